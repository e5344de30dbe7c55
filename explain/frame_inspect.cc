#include "explain/frame_inspect.h"

#include <netinet/in.h>

#include <cstring>

namespace tendril {

namespace {
uint16_t Be16(const Bytes& f, size_t off) { return static_cast<uint16_t>(f[off] << 8 | f[off + 1]); }

// One's complement sum of the pseudo header for an L4 checksum.
uint32_t PseudoSum(const FrameFacts& x, size_t l4_len, uint8_t proto) {
  uint32_t sum = 0;
  size_t alen = x.family == 4 ? 4 : 16;
  for (size_t i = 0; i < alen; i += 2) {
    sum += static_cast<uint32_t>(x.src[i] << 8 | x.src[i + 1]);
    sum += static_cast<uint32_t>(x.dst[i] << 8 | x.dst[i + 1]);
  }
  sum += proto;
  sum += static_cast<uint32_t>(l4_len & 0xffff) + static_cast<uint32_t>(l4_len >> 16);
  return sum;
}

bool L4ChecksumOk(const Bytes& f, const FrameFacts& x) {
  size_t len = x.l3_end - x.l4;
  const uint8_t* p = f.data() + x.l4;
  if (x.proto == IPPROTO_ICMP) return InetChecksum(p, len) == 0;
  if (x.proto == IPPROTO_UDP && x.family == 4 && Be16(f, x.l4 + 6) == 0) return true;  // none
  return InetChecksum(p, len, PseudoSum(x, len, x.proto)) == 0;
}

// Does the L4 header the datapath reads and rewrites fit, and (whole
// packets) does it agree with the IP length? The kernel's own checks.
bool L4Fits(const Bytes& f, const FrameFacts& x) {
  size_t room = x.l3_end > x.l4 ? x.l3_end - x.l4 : 0;
  if (x.proto == IPPROTO_TCP) {
    if (room < 20) return false;
    size_t doff = f[x.l4 + 12] >> 4;
    return doff >= 5 && (!x.whole || doff * 4 <= room);
  }
  if (x.proto == IPPROTO_UDP) {
    if (room < 8) return false;
    size_t ulen = Be16(f, x.l4 + 4);
    return !x.whole || (ulen >= 8 && ulen <= room);
  }
  return room >= 8;
}

void InspectV4(const Bytes& f, FrameFacts& x) {
  x.family = 4;
  if (f.size() < x.l3 + 20 || (f[x.l3] >> 4) != 4 || (f[x.l3] & 0xf) < 5) {
    x.ip_malformed = true;
    return;
  }
  size_t ihl = (f[x.l3] & 0xf) * 4;
  size_t tot = Be16(f, x.l3 + 2);
  if (tot < ihl || x.l3 + tot > f.size() || !Ipv4HeaderChecksumOk(f)) {
    x.ip_malformed = true;
    return;
  }
  x.l3_end = x.l3 + tot;
  x.l4 = x.l3 + ihl;
  x.proto = f[x.l3 + 9];
  std::memcpy(x.src.data(), &f[x.l3 + 12], 4);
  std::memcpy(x.dst.data(), &f[x.l3 + 16], 4);
  uint16_t frag = Be16(f, x.l3 + 6);
  x.whole = !(frag & 0x3fff);
  x.has_l4 = !(frag & 0x1fff);
}

void InspectV6(const Bytes& f, FrameFacts& x) {
  x.family = 6;
  if (f.size() < x.l3 + 40 || (f[x.l3] >> 4) != 6) {
    x.ip_malformed = true;
    return;
  }
  size_t plen = Be16(f, x.l3 + 4);
  if (x.l3 + 40 + plen > f.size()) {
    x.ip_malformed = true;
    return;
  }
  x.l3_end = x.l3 + 40 + plen;
  x.l4 = x.l3 + 40;
  x.proto = f[x.l3 + 6];
  std::memcpy(x.src.data(), &f[x.l3 + 8], 16);
  std::memcpy(x.dst.data(), &f[x.l3 + 24], 16);
}
}  // namespace

bool Ipv4HeaderChecksumOk(const Bytes& f) {
  if (f.size() < 14 + 20) return false;
  size_t ihl = (f[14] & 0xf) * 4;
  return ihl >= 20 && f.size() >= 14 + ihl && InetChecksum(&f[14], ihl) == 0;
}

void FixIpv4HeaderChecksum(Bytes& f) {
  if (f.size() < 14 + 20) return;
  size_t ihl = (f[14] & 0xf) * 4;
  if (ihl < 20 || f.size() < 14 + ihl) return;
  f[24] = f[25] = 0;
  uint16_t c = InetChecksum(&f[14], ihl);
  f[24] = static_cast<uint8_t>(c >> 8);
  f[25] = static_cast<uint8_t>(c);
}

FrameFacts Inspect(const Bytes& f) {
  FrameFacts x;
  if (f.size() < 14) return x;
  uint16_t type = Be16(f, 12);
  if (type == 0x8100 || type == 0x88a8) {
    x.tagged = true;
    return x;
  }
  if (type == 0x0800) InspectV4(f, x);
  else if (type == 0x86dd) InspectV6(f, x);
  if (!x.family || x.ip_malformed) return x;
  bool l4 = x.proto == IPPROTO_TCP || x.proto == IPPROTO_UDP || x.proto == IPPROTO_ICMP ||
            x.proto == IPPROTO_ICMPV6;
  if (!l4 || !x.has_l4) return x;
  if (!L4Fits(f, x)) {
    x.l4_malformed = true;
    return x;
  }
  if (x.proto == IPPROTO_TCP || x.proto == IPPROTO_UDP) {
    x.sport = Be16(f, x.l4);
    x.dport = Be16(f, x.l4 + 2);
  }
  x.l4_csum_ok = x.whole && L4ChecksumOk(f, x);
  return x;
}

}  // namespace tendril
