// `tendril explain`: what the node would do with a packet, asked of its own
// programs in a dry run on its live maps (explain/, bpf/lib/explain.h).
// Works with the agent down: the objects come from the agent's record in
// its state directory, the maps from the pins. --reply explains the reply
// of the flow just explained; --from-monitor a drop event of `monitor -o json`.
#include <net/if.h>
#include <netinet/in.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "cli/explain_plan.h"
#include "common/status.h"
#include "datapath/object_record.h"
#include "explain/frame_inspect.h"
#include "explain/report.h"
#include "explain/sock_run.h"

namespace tendril::cli {
namespace {

using nlohmann::json;

std::string ResultText(const json& h) {
  const std::string v = h.value("verdict", "");
  const std::string be = h.contains("backend") ? absl::StrCat(", backend ", h["backend"].value("address", "?")) : "";
  if (v == "drop") return absl::StrCat("dropped at ", h.value("hook", ""), ": ", h.value("drop_reason", "?"));
  if (h.contains("reply")) return absl::StrCat("answered at ", h.value("hook", ""), ": ", h["reply"].get<std::string>());
  if ((v == "redirect" || v == "tx") && h.contains("redirect"))
    return absl::StrCat("forwarded by ", h.value("hook", ""), " to ", h["redirect"].value("device", "?"), be);
  if (h.value("hook", "") == "tc-egress") return absl::StrCat("sent on by ", h.value("hook", ""), be);
  return absl::StrCat("passed to the kernel's stack by ", h.value("hook", ""), be);
}

struct Session {
  const Globals& g;
  DryRunner runner;
  BpffsPaths pins;
};

// The hooks in order, each on what the one before passed on. Fills
// report["hooks"] and "result"; the last run's frame and record in `last`.
absl::Status RunChain(Session& s, const std::vector<HookPlan>& hooks, Bytes frame, const PacketSpec& p,
                      json& report, ExplainedHook& last) {
  report["hooks"] = json::array();
  for (const HookPlan& h : hooks) {
    if (h.kind == RunCtx::kTc && p.vlan && h.program != "tnd_lxc_ingress") {
      report["hooks"].push_back({{"hook", h.hook}, {"device", h.device}, {"verdict", "pass"}, {"programs", {h.program}},
                                 {"steps", json::array()},
                                 {"not_run", "the kernel takes the VLAN tag off before tc, and tendril's tc programs leave "
                                             "tagged packets to the VLAN device's stack"}});
      break;
    }
    TND_ASSIGN_OR_RETURN(DryRunOutcome out, s.runner.Run(h.object, h.program, h.kind, frame, h.ifindex));
    last = ExplainedHook{h.hook, h.kind, h.device, frame, out};
    report["hooks"].push_back(DescribeHook(last, s.pins));
    if (VerdictName(h.kind, out.retval) != "pass") break;
    frame = out.out;  // what XDP passed on is what tc sees
  }
  const json& end = report["hooks"].back();
  report["result"] = ResultText(end);
  const bool choice = end.contains("service") && end["service"].value("active_slots", 0) > 1;
  for (const json& st : end.value("steps", json::array()))
    if (st.value("step", "") == "slot-random" && choice)
      report["note"] = "the service picks a slot at random for a new flow: a real packet may take another backend";
  return absl::OkStatus();
}

absl::StatusOr<json> ExplainOne(Session& s, const ExplainOpts& o, ExplainedHook& last, PacketSpec* spec) {
  TND_ASSIGN_OR_RETURN(PacketSpec p, ParsePacket(o.proto, o.src, o.dst, o.flags, o.vlan));
  if (o.device.empty() == (o.endpoint == 0))
    return absl::InvalidArgumentError("name where the packet enters: --device DEV or --endpoint ID (one of them)");
  TND_ASSIGN_OR_RETURN(Where w, o.endpoint ? ResolveEndpoint(s.g, o.endpoint) : ResolveDevice(o.device));
  TND_ASSIGN_OR_RETURN(std::vector<HookPlan> hooks, PlanHooks(s.g, o, w));
  TND_ASSIGN_OR_RETURN(Bytes frame, FrameFor(o, p, w));
  json report = {{"packet", {{"summary", p.Summary()}, {"device", w.device}, {"ifindex", w.ifindex}}}};
  TND_RETURN_IF_ERROR(RunChain(s, hooks, frame, p, report, last));
  *spec = p;
  return report;
}

std::string Text(const std::array<uint8_t, 16>& a, int fam, uint16_t port) {
  IpAddr ip = IpFromBytes(fam == 4 ? Family::kV4 : Family::kV6, a.data());
  return port ? HostPort(ip, port) : ip.ToString();
}

// The reply of the flow `fwd` explained: from where its packet went to where
// it came from, arriving where the node would see it. Fills `o`.
absl::Status ReplyOpts(const Session& s, const ExplainOpts& fo, const ExplainedHook& fwd, const json& fwd_hook,
                       const PacketSpec& fp, ExplainOpts* o) {
  const std::string v = fwd_hook.value("verdict", "");
  if (v == "drop" || fwd_hook.contains("reply"))
    return absl::FailedPreconditionError(absl::StrCat("no reply to explain: the packet was ", v == "drop" ? "dropped" : "answered by the node"));
  const FrameFacts f = Inspect(fwd.run.out);
  if (!f.family) return absl::FailedPreconditionError("no reply to explain: the packet left without an IP header");
  *o = fo;
  o->reply = false;
  o->src = Text(f.dst, f.family, f.dport);
  o->dst = Text(f.src, f.family, f.sport);
  o->flags = fp.proto != IPPROTO_TCP ? "" : (fp.tcp_flags & 0x02) ? "SA" : "A";
  o->src_mac.clear();
  o->dst_mac.clear();
  const std::string place = fwd_hook.contains("backend") ? fwd_hook["backend"].value("place", "") : "remote";
  const int ep = EndpointByAddress(s.g, IpFromBytes(f.family == 4 ? Family::kV4 : Family::kV6, f.dst.data()));
  o->endpoint = 0;
  o->device.clear();
  if (ep) {  // a pod answers: it sends through its veth
    o->endpoint = ep;
    o->hook = "lxc";
  } else if (place == "remote" && fwd_hook.contains("redirect")) {  // back in by the device it left by
    o->device = fwd_hook["redirect"].value("device", "");
    o->hook.clear();
  } else {  // a backend on this node answers through the stack, out of the device the client is behind
    o->device = fwd.device;
    o->hook = "tc-egress";
  }
  return absl::OkStatus();
}

// `monitor -o json`'s drop event (the first line of `path`, - for stdin) as
// explain's input.
absl::Status FromMonitor(const std::string& path, ExplainOpts* o) {
  std::string line;
  if (path == "-") {
    std::getline(std::cin, line);
  } else {
    std::ifstream in(path);
    if (!in) return absl::InvalidArgumentError(absl::StrCat("--from-monitor ", path, ": cannot be read"));
    std::getline(in, line);
  }
  json e = json::parse(line, nullptr, false);
  if (e.is_discarded() || !e.is_object() || e.value("type", "") != "drop")
    return absl::InvalidArgumentError(absl::StrCat("--from-monitor: not a drop event of `tendril -o json monitor`: ", line));
  o->proto = e.value("proto", "");
  o->src = e.value("source", "");
  o->dst = e.value("destination", "");
  const std::string point = e.value("observation_point", "");
  char name[IF_NAMESIZE] = {};
  if (point == "from-endpoint" && e.value("from_endpoint", 0) > 0) {
    o->endpoint = e.value("from_endpoint", 0);
    o->device.clear();
  } else if (if_indextoname(e.value("ifindex", 0u), name)) {
    o->device = name;
    if (point == "to-network") o->hook = "tc-egress";
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--from-monitor: the event's device (ifindex ", e.value("ifindex", 0u),
                                                   ") is not in this network namespace"));
  }
  return absl::OkStatus();
}

// A connect from this node through the socket programs (--hook sock).
absl::StatusOr<json> ExplainConnect(Session& s, const ExplainOpts& o, const std::string& cgroup_root) {
  if (!o.device.empty() || o.endpoint || o.reply || o.vlan)
    return absl::InvalidArgumentError("--hook sock is a connect from this node: no --device, --endpoint, --reply or --vlan");
  TND_ASSIGN_OR_RETURN(PacketSpec p, ParsePacket(o.proto, o.src, o.dst, o.flags, o.vlan));
  TND_ASSIGN_OR_RETURN(DryConnect c, RunDryConnect(s.runner, cgroup_root, p));
  json h = DescribeConnect(c, p, s.pins);
  const std::string v = h.value("verdict", "");
  std::string result = v == "translated"  ? absl::StrCat("connect() goes to ", h["backend"].value("address", "?"))
                       : v == "refused" ? absl::StrCat("connect() refused (ECONNREFUSED): ", h.value("drop_reason", ""))
                                        : "connect() proceeds unchanged: no service at this address and port";
  json report = {{"packet", {{"summary", p.Summary()}, {"device", ""}, {"ifindex", 0}}},
                 {"hooks", json::array({h})}, {"result", result}};
  if (h.contains("service") && h["service"].value("active_slots", 0) > 1 && !h.contains("drop_reason"))
    report["note"] = "socket LB picks by the socket: another connect may take another backend "
                     "(session affinity and a single backend are predicted exactly)";
  return report;
}

absl::StatusOr<json> Explain(const Globals& g, ExplainOpts o) {
  if (!o.from_monitor.empty()) TND_RETURN_IF_ERROR(FromMonitor(o.from_monitor, &o));
  TND_RETURN_IF_ERROR(ParsePacket(o.proto, o.src, o.dst, o.flags, o.vlan).status());
  auto rec = ReadObjectRecord(o.state_dir);
  if (!rec.ok()) return absl::FailedPreconditionError(rec.status().message());
  const std::string root = rec->bpffs_root.empty() ? g.bpffs_root : rec->bpffs_root;
  Session s{g, DryRunner(rec->objects, root), BpffsPaths(root)};
  if (o.hook == "sock") return ExplainConnect(s, o, rec->cgroup_root);
  ExplainedHook last;
  PacketSpec p;
  TND_ASSIGN_OR_RETURN(json report, ExplainOne(s, o, last, &p));
  if (!o.from_monitor.empty())
    report["note"] = "TCP flags are not in a monitor event: explained as a flow's first packet (--flags to change)";
  if (!o.reply) return report;
  ExplainOpts ro;
  TND_RETURN_IF_ERROR(ReplyOpts(s, o, last, report["hooks"].back(), p, &ro));
  ExplainedHook rlast;
  PacketSpec rp;
  TND_ASSIGN_OR_RETURN(json reply, ExplainOne(s, ro, rlast, &rp));
  for (const json& st : report["hooks"].back().value("steps", json::array()))
    if (st.value("step", "") == "ct-new")
      reply["note"] = "the forward packet opens a new flow and explain creates no entries, so this reply finds none; "
                      "once the flow exists (send it for real), --flags A --reply explains its replies";
  report["reply"] = reply;
  return report;
}

}  // namespace

void AddExplainCommand(CLI::App& app, Cli& c) {
  auto o = std::make_shared<ExplainOpts>();
  auto* cmd = app.add_subcommand("explain", "what the node would do with a packet: its own programs in a dry run "
                                            "on the live maps (changes nothing; works with the agent down)");
  cmd->add_option("proto", o->proto, "tcp, udp or icmp");
  cmd->add_option("src", o->src, "SRC[:PORT] (IPv6: [ADDR]:PORT)");
  cmd->add_option("dst", o->dst, "DST[:PORT]");
  cmd->add_option("--device", o->device, "the device the packet arrives on (or leaves by, --hook tc-egress)");
  cmd->add_option("--endpoint", o->endpoint, "the endpoint (pod) that sends the packet");
  cmd->add_option("--hook", o->hook, "ingress (XDP, then tc if XDP passes; the default), xdp, tc-ingress, "
                                     "tc-egress; lxc with --endpoint; sock: a connect() from this node");
  cmd->add_option("--flags", o->flags, "TCP flags, e.g. S (default), A, FA, R");
  cmd->add_option("--vlan", o->vlan, "an 802.1Q tag");
  cmd->add_option("--src-mac", o->src_mac, "source MAC (default: a neighbour's, 02:00:00:00:00:01)");
  cmd->add_option("--dst-mac", o->dst_mac, "destination MAC (default: the device's)");
  cmd->add_flag("--reply", o->reply, "then explain the reply of the flow, where the node would see it");
  cmd->add_option("--from-monitor", o->from_monitor, "a drop event from `tendril -o json monitor` (a file, - for stdin)");
  cmd->add_option("--state-dir", o->state_dir, "the agent's state directory (its record of the objects)");
  cmd->callback([&c, o] {
    if (o->from_monitor.empty() && (o->proto.empty() || o->src.empty() || o->dst.empty())) {
      c.rc = Fail(absl::InvalidArgumentError("give PROTO SRC[:PORT] DST[:PORT], or --from-monitor EVENT"));
      return;
    }
    auto r = Explain(c.g, *o);
    if (!r.ok()) {
      c.rc = Fail(r.status());
      return;
    }
    if (c.g.json()) PrintJson(*r);
    else std::printf("%s", RenderExplanation(*r).c_str());
  });
}

}  // namespace tendril::cli
