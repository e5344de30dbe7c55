// Addresses: IPv4/IPv6 addresses and MACs, parsed and formatted here and
// nowhere else. Map keys and netlink messages carry raw bytes; these turn
// them into text and back.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/statusor.h"

namespace tendril {

enum class Family { kV4, kV6 };

struct IpAddr {
  Family family = Family::kV4;
  std::array<uint8_t, 16> bytes{};  // network byte order; v4 uses the first 4
  std::string ToString() const;
  auto operator<=>(const IpAddr&) const = default;
};

absl::StatusOr<IpAddr> ParseIp(const std::string& text);
// From raw bytes: 4 for kV4, 16 for kV6.
IpAddr IpFromBytes(Family f, const uint8_t* bytes);

// "10.0.0.1:80", "[fd00::1]:80".
std::string HostPort(const IpAddr& ip, uint16_t port);
// The reverse: "ADDR:PORT" or "[ADDR6]:PORT", port 1-65535.
absl::StatusOr<std::pair<IpAddr, uint16_t>> ParseHostPort(const std::string& text);

// Raw map bytes as text; `family` is 4 or 6 as the maps store it.
// "10.0.0.1", "fd00::1".
std::string AddrText(const uint8_t* addr, int family);
// "10.0.0.1:80", "[fd00::1]:80"; port in network byte order.
std::string AddrPortText(const uint8_t* addr, uint16_t port_be, int family);

using Mac = std::array<uint8_t, 6>;
// "aa:bb:cc:dd:ee:ff".
std::string MacToString(const Mac& mac);
std::string MacToString(const uint8_t* mac);
absl::StatusOr<Mac> ParseMac(const std::string& text);

}  // namespace tendril
