// Builds Ethernet frames for BPF packet tests and `tendril explain`: a
// fluent builder over bytes, with real IPv4 header and L4 checksums so
// frames are what a NIC would see.
//
//   auto f = Frame().Eth().Vlan(100).Ipv4("10.0.0.1", "10.0.0.2").Tcp(1234, 80)
//                .Payload("hi").Build();
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tendril {

using Bytes = std::vector<uint8_t>;

struct EthMac {
  uint8_t b[6];
};
inline constexpr EthMac kMacA{{0x02, 0, 0, 0, 0, 0x0a}};
inline constexpr EthMac kMacB{{0x02, 0, 0, 0, 0, 0x0b}};

class Frame {
 public:
  Frame& Eth(EthMac dst = kMacB, EthMac src = kMacA);
  // 802.1Q (or 802.1ad with `tpid` 0x88a8) tag; call again for QinQ.
  Frame& Vlan(uint16_t vid, uint16_t tpid = 0x8100);
  // IPv4 header; `options` (a multiple of 4 bytes) makes IHL > 5.
  Frame& Ipv4(const std::string& src, const std::string& dst, Bytes options = {});
  Frame& Ipv6(const std::string& src, const std::string& dst);
  // A Destination Options extension header after Ipv6(): `options` (the
  // option TLVs, so that 2 + options.size() is a multiple of 8).
  Frame& Ipv6DestOpts(Bytes options);
  Frame& Tcp(uint16_t sport, uint16_t dport, uint8_t flags = 0x02 /* SYN */);
  Frame& Udp(uint16_t sport, uint16_t dport);
  Frame& IcmpEcho(uint16_t id = 1, uint16_t seq = 1);
  // An ICMP (ICMPv6 after Ipv6) error header: type, code, 4 bytes of
  // `rest` (unused, or the MTU); the packet it is about follows as Payload.
  Frame& IcmpError(uint8_t type, uint8_t code, uint32_t rest = 0);
  Frame& Payload(const std::string& data);
  // IPv4 fragment fields: identification and the flags/offset word
  // (0x2000 = more fragments, low 13 bits = offset in 8-byte units).
  Frame& Frag(uint16_t id, uint16_t flags_offset);
  // The IP protocol number when no L4 header follows (a later fragment).
  Frame& Proto(uint8_t proto);
  // A UDP header with checksum 0 ("none", IPv4 only).
  Frame& NoUdpChecksum();
  // TTL (IPv4) or hop limit (IPv6) of the last IP header (default 64).
  Frame& Ttl(uint8_t ttl);
  // A raw EtherType after the MAC addresses (for ARP or unknown protocols).
  Frame& EtherType(uint16_t type);

  // Fills lengths and checksums.
  Bytes Build() const;

 private:
  enum class L3 { kNone, kV4, kV6 };
  Bytes bytes_;
  size_t ethertype_off_ = 0;  // where the last EtherType/TPID field sits
  size_t l3_off_ = 0;
  size_t l4_off_ = 0;
  L3 l3_ = L3::kNone;
  uint8_t l4_proto_ = 0;
  bool no_udp_csum_ = false;
  size_t ext_off_ = 0;  // IPv6 destination options header, if any
};

uint16_t InetChecksum(const uint8_t* data, size_t len, uint32_t sum = 0);

}  // namespace tendril
