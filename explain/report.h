// What a dry run did, in words: the verdict, each rewrite (before -> after,
// checksums checked), the service and backend chosen and why, the state it
// found or would create, the next hop, the programs and tail calls. One
// JSON document per explanation (`-o json`); the text form is rendered from
// it, so both always say the same.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "datapath/paths.h"
#include "explain/packet_spec.h"
#include "explain/runner.h"
#include "explain/sock_run.h"

namespace tendril {

struct ExplainedHook {
  std::string hook;    // xdp, tc-ingress, tc-egress, lxc-from, lxc-to
  RunCtx kind = RunCtx::kTc;
  std::string device;  // where it ran
  Bytes in;
  DryRunOutcome run;
};

// "pass", "drop", "redirect", "tx" or "aborted" for the hook's return value.
std::string VerdictName(RunCtx kind, uint32_t retval);

// One hook's run, described; `pins` for the service and backend maps.
nlohmann::json DescribeHook(const ExplainedHook& h, const BpffsPaths& pins);

// The socket program's dry connect (explain/sock_run.h), described: verdict
// "translated" (to the backend), "refused" (ECONNREFUSED, with the reason)
// or "unchanged" (no service).
nlohmann::json DescribeConnect(const DryConnect& c, const PacketSpec& p, const BpffsPaths& pins);

// The text form of a whole explanation ({"packet": ..., "hooks": [...],
// "result": ...}).
std::string RenderExplanation(const nlohmann::json& report);

}  // namespace tendril
