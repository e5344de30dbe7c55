#include "maps/conntrack.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace tendril {
namespace {

template <typename K, typename V>
absl::StatusOr<GcResult> Gc(Map<K, V>& m, uint32_t now) {
  GcResult r;
  std::vector<K> dead;
  TND_RETURN_IF_ERROR(m.ForEach([&](const K& k, const V& v) {
    r.scanned++;
    // Signed difference: correct across the (136-year) wrap of the seconds.
    if (static_cast<int32_t>(v.expires - now) < 0) dead.push_back(k);
  }));
  for (const K& k : dead) {
    auto st = m.Delete(k);
    if (st.ok()) r.removed++;
    else if (!absl::IsNotFound(st)) return st;  // the LRU or the data path got there first
  }
  return r;
}

template <typename K, typename V>
absl::StatusOr<uint32_t> Flush(Map<K, V>& m) {
  std::vector<K> keys;
  TND_RETURN_IF_ERROR(m.ForEach([&](const K& k, const V&) { keys.push_back(k); }));
  uint32_t n = 0;
  for (const K& k : keys) {
    auto st = m.Delete(k);
    if (st.ok()) n++;
    else if (!absl::IsNotFound(st)) return st;
  }
  return n;
}

}  // namespace

uint32_t BpfClockSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint32_t>(ts.tv_sec);
}

absl::StatusOr<GcResult> GcConntrack(CtMap& ct, uint32_t now) { return Gc(ct, now); }
absl::StatusOr<GcResult> GcNat(NatMap& nat, uint32_t now) { return Gc(nat, now); }
absl::StatusOr<uint32_t> FlushConntrack(CtMap& ct) { return Flush(ct); }
absl::StatusOr<uint32_t> FlushNat(NatMap& nat) { return Flush(nat); }

std::string AddrText(const uint8_t* addr, int family) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, buf, sizeof(buf));
  return buf;
}

std::string AddrPortText(const uint8_t* addr, uint16_t port_be, int family) {
  std::string a = AddrText(addr, family);
  return family == 4 ? absl::StrCat(a, ":", ntohs(port_be)) : absl::StrCat("[", a, "]:", ntohs(port_be));
}

const char* ProtoName(uint8_t proto) {
  switch (proto) {
    case IPPROTO_TCP: return "TCP";
    case IPPROTO_UDP: return "UDP";
    default: return "?";
  }
}

std::string TcpStateName(uint8_t proto, uint8_t seen) {
  if (proto != IPPROTO_TCP) return "-";
  std::vector<const char*> f;
  if (seen & TND_TCP_SYN) f.push_back("SYN");
  if (seen & TND_TCP_ACK) f.push_back("ACK");
  if (seen & TND_TCP_FIN) f.push_back("FIN");
  if (seen & TND_TCP_RST) f.push_back("RST");
  return f.empty() ? "-" : absl::StrJoin(f, " ");
}

std::string CtFlagsText(uint8_t flags) {
  std::vector<const char*> f;
  if (flags & TND_CT_F_SERVICE) f.push_back("service");
  if (flags & TND_CT_F_REPLY) f.push_back("reply");
  if (flags & TND_CT_F_SNAT) f.push_back("snat");
  if (flags & TND_CT_F_DSR) f.push_back("dsr");
  if (flags & TND_CT_F_LOCAL) f.push_back("local");
  if (flags & TND_CT_F_XDP) f.push_back("xdp");
  if (flags & TND_CT_F_ENDPOINT) f.push_back("endpoint");
  if (flags & TND_CT_F_INBOUND) f.push_back("inbound");
  return absl::StrJoin(f, ",");
}

}  // namespace tendril
