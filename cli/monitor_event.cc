#include "cli/monitor_event.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "maps/abi.h"
#include "cli/format.h"
#include "maps/conntrack.h"
#include "network/addr.h"

namespace tendril::cli {

using nlohmann::json;

absl::StatusOr<tnd_event> EventFromBytes(const void* data, size_t size) {
  if (size < sizeof(tnd_event))
    return absl::DataLossError(absl::StrCat("event of ", size, " bytes, expected ", sizeof(tnd_event)));
  tnd_event e;
  std::memcpy(&e, data, sizeof(e));
  return e;
}

json DecodeEvent(const tnd_event& e, int64_t mono_to_real_ns) {
  int fam = e.family == 6 ? 6 : 4;
  bool ports = e.proto == IPPROTO_TCP || e.proto == IPPROTO_UDP;
  auto ep = [&](const uint8_t* addr, uint16_t port) {
    return ports ? AddrPortText(addr, port, fam) : AddrPortText(addr, 0, fam).substr(0, AddrPortText(addr, 0, fam).rfind(':'));
  };
  int64_t real = static_cast<int64_t>(e.ts_ns) + mono_to_real_ns;
  time_t sec = static_cast<time_t>(real / 1000000000);
  tm tm_utc{};
  gmtime_r(&sec, &tm_utc);
  char ts[64];
  std::strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm_utc);
  std::string time = absl::StrCat(ts, ".", absl::StrFormat("%06d", static_cast<int>((real / 1000) % 1000000)), "Z");
  json j = {{"type", e.type == TND_EVENT_DROP ? "drop" : e.type == TND_EVENT_TRACE ? "trace" : "unknown"},
            {"time", time},
            {"observation_point", abi::ObsPointName(e.point)},
            {"ifindex", e.ifindex},
            {"family", fam == 4 ? "ipv4" : "ipv6"},
            {"proto", ProtoName(e.proto)},
            {"source", ep(e.saddr, e.sport)},
            {"destination", ep(e.daddr, e.dport)},
            {"length", e.len},
            {"from_endpoint", e.src_ep},
            {"to_endpoint", e.dst_ep}};
  if (e.type == TND_EVENT_DROP) {
    j["reason"] = abi::DropReasonName(e.reason);
    j["reason_code"] = e.reason;
  } else {
    j["verdict"] = abi::TraceVerdictName(e.verdict);
    j["to_ifindex"] = e.to_ifindex;
    bool has_nat = e.nat_port != 0 || std::any_of(std::begin(e.nat_addr), std::end(e.nat_addr), [](uint8_t b) { return b; });
    if (has_nat) j["translated"] = ep(e.nat_addr, e.nat_port);
  }
  return j;
}

std::string EventLine(const json& j) {
  auto epname = [](uint32_t id) { return id ? absl::StrCat("endpoint ", id) : std::string(); };
  std::string where = absl::StrCat(j.value("observation_point", ""), " ifindex ", j.value("ifindex", 0u));
  std::string flow = absl::StrCat(j.value("source", ""), " -> ", j.value("destination", ""), " ",
                                  j.value("proto", ""));
  std::string src = epname(j.value("from_endpoint", 0u));
  if (j.value("type", "") == "drop")
    return absl::StrCat(j.value("time", ""), " DROP  ", where, src.empty() ? "" : " (" + src + ")", ": ", flow,
                        ", reason ", j.value("reason", ""));
  std::string out = absl::StrCat(j.value("time", ""), " TRACE ", where, src.empty() ? "" : " (" + src + ")", ": ",
                                 flow);
  if (j.contains("translated"))
    out += absl::StrCat(j.value("verdict", "") == "masquerade" ? ", source now " : ", to ",
                        j.value("translated", ""));
  out += absl::StrCat(", ", j.value("verdict", ""), " ifindex ", j.value("to_ifindex", 0u));
  std::string dst = epname(j.value("to_endpoint", 0u));
  if (!dst.empty()) out += " (" + dst + ")";
  return out;
}

}  // namespace tendril::cli
