#include "network/addr.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tendril {

std::string IpAddr::ToString() const { return AddrText(bytes.data(), family == Family::kV4 ? 4 : 6); }

absl::StatusOr<IpAddr> ParseIp(const std::string& text) {
  IpAddr a;
  if (text.find(':') != std::string::npos) {
    a.family = Family::kV6;
    if (inet_pton(AF_INET6, text.c_str(), a.bytes.data()) != 1)
      return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not an IPv6 address"));
  } else if (inet_pton(AF_INET, text.c_str(), a.bytes.data()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not an IPv4 address"));
  }
  return a;
}

IpAddr IpFromBytes(Family f, const uint8_t* bytes) {
  IpAddr a;
  a.family = f;
  std::memcpy(a.bytes.data(), bytes, f == Family::kV4 ? 4 : 16);
  return a;
}

std::string HostPort(const IpAddr& ip, uint16_t port) {
  return ip.family == Family::kV6 ? absl::StrCat("[", ip.ToString(), "]:", port)
                                  : absl::StrCat(ip.ToString(), ":", port);
}

absl::StatusOr<std::pair<IpAddr, uint16_t>> ParseHostPort(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("invalid address \"", text, "\": ", why));
  };
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) return bad("missing ']'");
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("missing :PORT");
    port = text.substr(close + 2);
    if (host.find(':') == std::string::npos) return bad("brackets are for IPv6 addresses");
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) return bad("missing :PORT");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) return bad("write IPv6 addresses as [ADDR]:PORT");
  }
  auto ip = ParseIp(host);
  if (!ip.ok()) return bad(std::string(ip.status().message()));
  if (port.empty()) return bad("missing port");
  for (char c : port)
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return bad(absl::StrCat("port \"", port, "\" is not a number"));
  uint32_t p = 0;
  if (port.size() > 5 || !absl::SimpleAtoi(port, &p) || p == 0 || p > 65535)
    return bad(absl::StrCat("port ", port, " is out of range (1-65535)"));
  return std::make_pair(*ip, static_cast<uint16_t>(p));
}

std::string AddrText(const uint8_t* addr, int family) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, buf, sizeof(buf));
  return buf;
}

std::string AddrPortText(const uint8_t* addr, uint16_t port_be, int family) {
  std::string a = AddrText(addr, family);
  return family == 4 ? absl::StrCat(a, ":", ntohs(port_be)) : absl::StrCat("[", a, "]:", ntohs(port_be));
}

std::string MacToString(const uint8_t* m) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

std::string MacToString(const Mac& mac) { return MacToString(mac.data()); }

absl::StatusOr<Mac> ParseMac(const std::string& text) {
  Mac mac{};
  unsigned m[6] = {};
  char tail = 0;
  if (text.size() != 17 ||
      std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5], &tail) != 6)
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not a MAC address (aa:bb:cc:dd:ee:ff)"));
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(m[i]);
  return mac;
}

}  // namespace tendril
