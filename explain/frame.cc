#include "explain/frame.h"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

namespace tendril {
namespace {

void Put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

void Set16(Bytes& b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v >> 8);
  b[off + 1] = static_cast<uint8_t>(v);
}

void PutAddr(Bytes& b, int af, const std::string& text) {
  uint8_t buf[16];
  if (inet_pton(af, text.c_str(), buf) != 1) throw std::invalid_argument("bad address " + text);
  b.insert(b.end(), buf, buf + (af == AF_INET ? 4 : 16));
}

}  // namespace

uint16_t InetChecksum(const uint8_t* data, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  if (len & 1) sum += static_cast<uint32_t>(data[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

Frame& Frame::Eth(EthMac dst, EthMac src) {
  bytes_.insert(bytes_.end(), dst.b, dst.b + 6);
  bytes_.insert(bytes_.end(), src.b, src.b + 6);
  ethertype_off_ = bytes_.size();
  Put16(bytes_, 0);  // filled by the next layer
  return *this;
}

Frame& Frame::EtherType(uint16_t type) {
  Set16(bytes_, ethertype_off_, type);
  return *this;
}

Frame& Frame::Vlan(uint16_t vid, uint16_t tpid) {
  Set16(bytes_, ethertype_off_, tpid);
  Put16(bytes_, vid & 0x0fff);
  ethertype_off_ = bytes_.size();
  Put16(bytes_, 0);
  return *this;
}

Frame& Frame::Ipv4(const std::string& src, const std::string& dst, Bytes options) {
  if (options.size() % 4) throw std::invalid_argument("IPv4 options must be 4-byte multiples");
  Set16(bytes_, ethertype_off_, 0x0800);
  l3_off_ = bytes_.size();
  l3_ = L3::kV4;
  bytes_.push_back(static_cast<uint8_t>(0x40 | (5 + options.size() / 4)));
  bytes_.push_back(0);    // DSCP
  Put16(bytes_, 0);       // total length, later
  Put16(bytes_, 0x1234);  // id
  Put16(bytes_, 0x4000);  // DF
  bytes_.push_back(64);   // TTL
  bytes_.push_back(0);    // protocol, later
  Put16(bytes_, 0);       // checksum, later
  PutAddr(bytes_, AF_INET, src);
  PutAddr(bytes_, AF_INET, dst);
  bytes_.insert(bytes_.end(), options.begin(), options.end());
  return *this;
}

Frame& Frame::Ipv6(const std::string& src, const std::string& dst) {
  Set16(bytes_, ethertype_off_, 0x86dd);
  l3_off_ = bytes_.size();
  l3_ = L3::kV6;
  bytes_.push_back(0x60);
  bytes_.push_back(0);
  Put16(bytes_, 0);
  Put16(bytes_, 0);   // payload length, later
  bytes_.push_back(0);  // next header, later
  bytes_.push_back(64);
  PutAddr(bytes_, AF_INET6, src);
  PutAddr(bytes_, AF_INET6, dst);
  return *this;
}

Frame& Frame::Ipv6DestOpts(Bytes options) {
  if ((2 + options.size()) % 8) throw std::invalid_argument("destination options must fill 8-byte units");
  ext_off_ = bytes_.size();
  bytes_.push_back(0);  // next header, later
  bytes_.push_back(static_cast<uint8_t>((2 + options.size()) / 8 - 1));
  bytes_.insert(bytes_.end(), options.begin(), options.end());
  return *this;
}

Frame& Frame::Tcp(uint16_t sport, uint16_t dport, uint8_t flags) {
  l4_off_ = bytes_.size();
  l4_proto_ = IPPROTO_TCP;
  Put16(bytes_, sport);
  Put16(bytes_, dport);
  for (int i = 0; i < 8; ++i) bytes_.push_back(0);  // seq, ack
  bytes_.push_back(0x50);                           // data offset 5
  bytes_.push_back(flags);
  Put16(bytes_, 65535);  // window
  Put16(bytes_, 0);      // checksum, later
  Put16(bytes_, 0);      // urgent
  return *this;
}

Frame& Frame::Udp(uint16_t sport, uint16_t dport) {
  l4_off_ = bytes_.size();
  l4_proto_ = IPPROTO_UDP;
  Put16(bytes_, sport);
  Put16(bytes_, dport);
  Put16(bytes_, 0);  // length, later
  Put16(bytes_, 0);  // checksum, later
  return *this;
}

Frame& Frame::IcmpEcho(uint16_t id, uint16_t seq) {
  l4_off_ = bytes_.size();
  l4_proto_ = static_cast<uint8_t>(l3_ == L3::kV6 ? int{IPPROTO_ICMPV6} : int{IPPROTO_ICMP});
  bytes_.push_back(l3_ == L3::kV6 ? 128 : 8);
  bytes_.push_back(0);
  Put16(bytes_, 0);
  Put16(bytes_, id);
  Put16(bytes_, seq);
  return *this;
}

Frame& Frame::Frag(uint16_t id, uint16_t flags_offset) {
  Set16(bytes_, l3_off_ + 4, id);
  Set16(bytes_, l3_off_ + 6, flags_offset);
  return *this;
}

Frame& Frame::Proto(uint8_t proto) {
  l4_proto_ = proto;
  return *this;
}

Frame& Frame::NoUdpChecksum() {
  no_udp_csum_ = true;
  return *this;
}

Frame& Frame::IcmpError(uint8_t type, uint8_t code, uint32_t rest) {
  l4_off_ = bytes_.size();
  l4_proto_ = static_cast<uint8_t>(l3_ == L3::kV6 ? int{IPPROTO_ICMPV6} : int{IPPROTO_ICMP});
  bytes_.push_back(type);
  bytes_.push_back(code);
  Put16(bytes_, 0);
  Put16(bytes_, static_cast<uint16_t>(rest >> 16));
  Put16(bytes_, static_cast<uint16_t>(rest));
  return *this;
}

Frame& Frame::Ttl(uint8_t ttl) {
  if (l3_ == L3::kV4) bytes_[l3_off_ + 8] = ttl;
  if (l3_ == L3::kV6) bytes_[l3_off_ + 7] = ttl;
  return *this;
}

Frame& Frame::Payload(const std::string& data) {
  bytes_.insert(bytes_.end(), data.begin(), data.end());
  return *this;
}

Bytes Frame::Build() const {
  Bytes b = bytes_;
  if (l3_ == L3::kNone) return b;
  size_t l4_len = l4_off_ ? b.size() - l4_off_ : 0;
  uint32_t pseudo = 0;
  if (l3_ == L3::kV4) {
    size_t ihl = (b[l3_off_] & 0x0f) * 4u;
    Set16(b, l3_off_ + 2, static_cast<uint16_t>(b.size() - l3_off_));
    b[l3_off_ + 9] = l4_proto_;
    Set16(b, l3_off_ + 10, 0);
    Set16(b, l3_off_ + 10, InetChecksum(&b[l3_off_], ihl));
    for (size_t i = 0; i < 8; i += 2) pseudo += static_cast<uint32_t>(b[l3_off_ + 12 + i] << 8 | b[l3_off_ + 13 + i]);
  } else {
    Set16(b, l3_off_ + 4, static_cast<uint16_t>(b.size() - l3_off_ - 40));
    b[l3_off_ + 6] = l4_proto_;
    if (ext_off_) {
      b[l3_off_ + 6] = 60;  // destination options
      b[ext_off_] = l4_proto_;
    }
    for (size_t i = 0; i < 32; i += 2) pseudo += static_cast<uint32_t>(b[l3_off_ + 8 + i] << 8 | b[l3_off_ + 9 + i]);
  }
  if (!l4_off_) return b;
  if (l4_proto_ == IPPROTO_UDP) Set16(b, l4_off_ + 4, static_cast<uint16_t>(l4_len));
  if (l4_proto_ == IPPROTO_UDP && no_udp_csum_) return b;
  bool with_pseudo = !(l3_ == L3::kV4 && l4_proto_ == IPPROTO_ICMP);
  if (with_pseudo) pseudo += l4_proto_ + static_cast<uint32_t>(l4_len);
  else pseudo = 0;
  size_t csum_off = l4_proto_ == IPPROTO_TCP ? 16 : l4_proto_ == IPPROTO_UDP ? 6 : 2;
  if (l4_proto_ == IPPROTO_UDP) Set16(b, l4_off_ + 4, static_cast<uint16_t>(l4_len));
  Set16(b, l4_off_ + csum_off, 0);
  uint16_t c = InetChecksum(&b[l4_off_], l4_len, pseudo);
  if (c == 0 && l4_proto_ == IPPROTO_UDP) c = 0xffff;
  Set16(b, l4_off_ + csum_off, c);
  return b;
}

}  // namespace tendril
