#include "network/cidr.h"

#include <arpa/inet.h>

#include <algorithm>

#include "absl/strings/string_view.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tendril {

bool Cidr::Contains(Family f, const std::array<uint8_t, 16>& a) const {
  if (f != family) return false;
  int full = prefix_len / 8, rest = prefix_len % 8;
  for (int i = 0; i < full; ++i)
    if (a[i] != addr[i]) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (addr[full] & mask);
}

std::string Cidr::ToString() const {
  return absl::StrCat(AddrText(addr.data(), family == Family::kV4 ? 4 : 6), "/", prefix_len);
}

absl::StatusOr<Cidr> ParseCidr(absl::string_view text, bool* had_host_bits) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrFormat("invalid CIDR \"%s\": %s", text, why));
  };
  if (text.empty()) return bad("empty");
  absl::string_view addr_part = text;
  absl::string_view len_part;
  bool has_len = false;
  if (auto slash = text.find('/'); slash != absl::string_view::npos) {
    addr_part = text.substr(0, slash);
    len_part = text.substr(slash + 1);
    has_len = true;
  }
  Cidr c;
  std::string addr_str(addr_part);
  if (addr_str.find(':') != std::string::npos) {
    c.family = Family::kV6;
    if (inet_pton(AF_INET6, addr_str.c_str(), c.addr.data()) != 1)
      return bad(absl::StrCat("\"", addr_part, "\" is not an IPv6 address"));
  } else {
    c.family = Family::kV4;
    if (inet_pton(AF_INET, addr_str.c_str(), c.addr.data()) != 1)
      return bad(absl::StrCat("\"", addr_part, "\" is not an IPv4 address"));
  }
  int len = c.MaxPrefix();
  if (has_len) {
    if (len_part.empty()) return bad("missing prefix length after '/'");
    for (char ch : len_part)
      if (!absl::ascii_isdigit(static_cast<unsigned char>(ch)))
        return bad(absl::StrCat("prefix length \"", len_part, "\" is not a number"));
    if (len_part.size() > 3 || !absl::SimpleAtoi(len_part, &len) || len > c.MaxPrefix())
      return bad(absl::StrCat("prefix length ", len_part, " is out of range for ",
                              c.family == Family::kV4 ? "IPv4 (0-32)" : "IPv6 (0-128)"));
  }
  c.prefix_len = static_cast<uint8_t>(len);
  bool host_bits = false;
  for (int i = 0; i < c.AddrLen(); ++i) {
    int bits_in_byte = std::clamp(len - i * 8, 0, 8);
    uint8_t mask = bits_in_byte == 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits_in_byte));
    if (c.addr[i] & ~mask) host_bits = true;
    c.addr[i] &= mask;
  }
  if (had_host_bits) *had_host_bits = host_bits;
  return c;
}

}  // namespace tendril
