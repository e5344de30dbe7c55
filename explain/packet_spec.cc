#include "explain/packet_spec.h"

#include <netinet/in.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tendril {
namespace {

constexpr uint16_t kDefaultSourcePort = 40000;

// "10.0.0.1", "10.0.0.1:80", "fd00::1", "[fd00::1]:80".
absl::StatusOr<std::pair<IpAddr, uint16_t>> ParseEnd(const std::string& text, const char* what) {
  if (auto ip = ParseIp(text); ip.ok()) return std::make_pair(*ip, uint16_t{0});
  auto hp = ParseHostPort(text);
  if (!hp.ok()) return absl::InvalidArgumentError(absl::StrCat(what, " \"", text, "\": not ADDR, ADDR:PORT or [ADDR6]:PORT"));
  return *hp;
}

absl::StatusOr<uint8_t> ParseFlags(const std::string& text) {
  uint8_t f = 0;
  for (char c : absl::AsciiStrToUpper(text)) {
    switch (c) {
      case 'F': f |= 0x01; break;
      case 'S': f |= 0x02; break;
      case 'R': f |= 0x04; break;
      case 'P': f |= 0x08; break;
      case 'A': f |= 0x10; break;
      case 'U': f |= 0x20; break;
      default: return absl::InvalidArgumentError(absl::StrCat("--flags \"", text, "\": '", std::string(1, c),
                                                              "' is not one of S A F R P U"));
    }
  }
  return f;
}

std::string FlagsText(uint8_t f) {
  std::string s;
  const char* names = "FSRPAU";
  for (int i = 0; i < 6; ++i)
    if (f & (1 << i)) s += names[i];
  return s;
}

}  // namespace

std::string PacketSpec::Summary() const {
  const bool l4 = proto == IPPROTO_TCP || proto == IPPROTO_UDP;
  std::string s = absl::StrCat(proto == IPPROTO_TCP ? "TCP" : proto == IPPROTO_UDP ? "UDP" : "ICMP echo", " ",
                               l4 ? HostPort(src, sport) : src.ToString(), " -> ",
                               l4 ? HostPort(dst, dport) : dst.ToString());
  if (proto == IPPROTO_TCP) absl::StrAppend(&s, " [", FlagsText(tcp_flags), "]");
  if (vlan) absl::StrAppend(&s, " vlan ", vlan);
  return s;
}

absl::StatusOr<PacketSpec> ParsePacket(const std::string& proto, const std::string& src, const std::string& dst,
                                       const std::string& flags, int vlan) {
  std::vector<std::string> errors;
  PacketSpec p;
  const std::string pr = absl::AsciiStrToLower(proto);
  if (pr == "tcp") p.proto = IPPROTO_TCP;
  else if (pr == "udp") p.proto = IPPROTO_UDP;
  else if (pr == "icmp") p.proto = IPPROTO_ICMP;
  else errors.push_back(absl::StrCat("protocol \"", proto, "\": not tcp, udp or icmp"));
  auto s = ParseEnd(src, "source");
  auto d = ParseEnd(dst, "destination");
  if (!s.ok()) errors.emplace_back(s.status().message());
  if (!d.ok()) errors.emplace_back(d.status().message());
  if (s.ok() && d.ok()) {
    std::tie(p.src, p.sport) = *s;
    std::tie(p.dst, p.dport) = *d;
    if (p.src.family != p.dst.family) errors.push_back("source and destination are of different families");
  }
  const bool l4 = p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP;
  if (l4 && d.ok() && p.dport == 0) errors.push_back(absl::StrCat("destination \"", dst, "\" needs a port (ADDR:PORT)"));
  if (!l4 && p.proto && ((s.ok() && p.sport) || (d.ok() && p.dport))) errors.push_back("ICMP has no ports");
  if (l4 && p.sport == 0) p.sport = kDefaultSourcePort;
  if (p.proto == IPPROTO_TCP) {
    auto f = ParseFlags(flags.empty() ? "S" : flags);
    if (f.ok()) p.tcp_flags = *f;
    else errors.emplace_back(f.status().message());
  } else if (!flags.empty()) {
    errors.push_back("--flags is for TCP only");
  }
  if (vlan < 0 || vlan > 4094) errors.push_back(absl::StrCat("--vlan ", vlan, ": not 1-4094"));
  p.vlan = static_cast<uint16_t>(vlan);
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
  return p;
}

Bytes BuildFrame(const PacketSpec& p, const Mac& dst_mac, const Mac& src_mac) {
  EthMac d, s;
  std::copy(dst_mac.begin(), dst_mac.end(), d.b);
  std::copy(src_mac.begin(), src_mac.end(), s.b);
  Frame f;
  f.Eth(d, s);
  if (p.vlan) f.Vlan(p.vlan);
  if (p.family() == 4) f.Ipv4(p.src.ToString(), p.dst.ToString());
  else f.Ipv6(p.src.ToString(), p.dst.ToString());
  if (p.proto == IPPROTO_TCP) f.Tcp(p.sport, p.dport, p.tcp_flags);
  else if (p.proto == IPPROTO_UDP) f.Udp(p.sport, p.dport);
  else f.IcmpEcho();
  return f.Payload("tendril explain").Build();
}

PacketSpec Reversed(const PacketSpec& p, uint8_t tcp_flags) {
  PacketSpec r = p;
  std::swap(r.src, r.dst);
  std::swap(r.sport, r.dport);
  r.tcp_flags = tcp_flags;
  return r;
}

}  // namespace tendril
