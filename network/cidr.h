// IP prefixes (CIDRs): the prefilter, source ranges, pod CIDRs.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"
#include "network/addr.h"

namespace tendril {

struct Cidr {
  Family family = Family::kV4;
  std::array<uint8_t, 16> addr{};  // network byte order; v4 uses the first 4
  uint8_t prefix_len = 0;

  int AddrLen() const { return family == Family::kV4 ? 4 : 16; }
  int MaxPrefix() const { return family == Family::kV4 ? 32 : 128; }
  std::string ToString() const;
  // Whether the address `a` (of family `f`, network byte order) is inside.
  bool Contains(Family f, const std::array<uint8_t, 16>& a) const;

  auto operator<=>(const Cidr&) const = default;
};

// Parses "ADDR/LEN" or a bare address (a host prefix). Host bits below the
// prefix are cleared ("10.1.2.3/8" becomes 10.0.0.0/8); `*had_host_bits`
// says whether that happened. Errors name the input and what is wrong.
absl::StatusOr<Cidr> ParseCidr(absl::string_view text, bool* had_host_bits = nullptr);

}  // namespace tendril
