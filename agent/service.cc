#include "agent/service.h"

#include <arpa/inet.h>

#include <numeric>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tendril {

std::string IpAddr::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == Family::kV4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof(buf));
  return buf;
}

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

const char* L4ProtoName(L4Proto p) { return p == L4Proto::kTcp ? "TCP" : "UDP"; }

namespace {
std::string HostPort(const IpAddr& ip, uint16_t port) {
  return ip.family == Family::kV6 ? absl::StrCat("[", ip.ToString(), "]:", port)
                                  : absl::StrCat(ip.ToString(), ":", port);
}
}  // namespace

std::string Frontend::ToString() const {
  return absl::StrCat(HostPort(ip, port), "/", L4ProtoName(proto));
}

std::string Backend::Address() const { return HostPort(ip, port); }

const char* BackendStateName(BackendState s) {
  switch (s) {
    case BackendState::kActive: return "active";
    case BackendState::kTerminating: return "terminating";
    case BackendState::kMaintenance: return "maintenance";
  }
  return "?";
}

absl::StatusOr<BackendState> ParseBackendState(const std::string& s) {
  std::string l = absl::AsciiStrToLower(s);
  if (l == "active") return BackendState::kActive;
  if (l == "terminating") return BackendState::kTerminating;
  if (l == "maintenance") return BackendState::kMaintenance;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown backend state \"", s, "\": expected active, terminating or maintenance"));
}

const char* AlgorithmName(Algorithm a) { return a == Algorithm::kMaglev ? "maglev" : "random"; }

absl::StatusOr<Algorithm> ParseAlgorithm(const std::string& s) {
  if (s == "random") return Algorithm::kRandom;
  if (s == "maglev") return Algorithm::kMaglev;
  return absl::InvalidArgumentError(absl::StrCat("unknown algorithm \"", s, "\": expected random or maglev"));
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

absl::StatusOr<Frontend> ParseFrontend(const std::string& text) {
  Frontend f;
  std::string addr = text;
  if (size_t slash = text.rfind('/'); slash != std::string::npos) {
    addr = text.substr(0, slash);
    std::string proto = absl::AsciiStrToUpper(text.substr(slash + 1));
    if (proto == "TCP")
      f.proto = L4Proto::kTcp;
    else if (proto == "UDP")
      f.proto = L4Proto::kUdp;
    else
      return absl::InvalidArgumentError(absl::StrCat("invalid frontend \"", text, "\": unknown protocol \"",
                                                     text.substr(slash + 1), "\" (TCP or UDP)"));
  }
  auto hp = ParseHostPort(addr);
  if (!hp.ok()) return absl::InvalidArgumentError(absl::StrCat("invalid frontend: ", hp.status().message()));
  f.ip = hp->first;
  f.port = hp->second;
  return f;
}

absl::StatusOr<Backend> ParseBackend(const std::string& text) {
  Backend b;
  std::string addr = text;
  if (size_t at = text.rfind('@'); at != std::string::npos) {
    addr = text.substr(0, at);
    std::string w = text.substr(at + 1);
    if (!absl::SimpleAtoi(w, &b.weight) || w.empty() || w[0] == '-' || w[0] == '+' || b.weight > 1000)
      return absl::InvalidArgumentError(
          absl::StrCat("invalid backend \"", text, "\": weight \"", w, "\" is not a number in 0-1000"));
  }
  auto hp = ParseHostPort(addr);
  if (!hp.ok()) return absl::InvalidArgumentError(absl::StrCat("invalid backend: ", hp.status().message()));
  b.ip = hp->first;
  b.port = hp->second;
  return b;
}

absl::Status ValidateService(const Service& s, const ServiceLimits& limits) {
  std::string name = s.frontend.ToString();
  if (s.type != "ClusterIP")
    return absl::InvalidArgumentError(absl::StrCat(
        "service ", name, ": type \"", s.type, "\" is not supported yet (ClusterIP only)"));
  if (s.frontend.port == 0) return absl::InvalidArgumentError(absl::StrCat("service ", name, ": port 0"));
  if (s.backends.size() > limits.max_backends)
    return absl::InvalidArgumentError(absl::StrCat("service ", name, ": ", s.backends.size(),
                                                   " backends, more than the maximum of ",
                                                   limits.max_backends, " (max-backends-per-service)"));
  std::set<std::pair<IpAddr, uint16_t>> seen;
  for (const Backend& b : s.backends) {
    if (b.ip.family != s.frontend.ip.family)
      return absl::InvalidArgumentError(absl::StrCat(
          "service ", name, ": backend ", b.Address(), " is ",
          b.ip.family == Family::kV4 ? "IPv4" : "IPv6", ", the frontend is ",
          s.frontend.ip.family == Family::kV4 ? "IPv4" : "IPv6"));
    if (b.port == 0) return absl::InvalidArgumentError(absl::StrCat("service ", name, ": backend port 0"));
    if (!seen.insert({b.ip, b.port}).second)
      return absl::InvalidArgumentError(absl::StrCat("service ", name, ": backend ", b.Address(), " listed twice"));
  }
  if (s.affinity_timeout > 86400 * 7)
    return absl::InvalidArgumentError(
        absl::StrCat("service ", name, ": affinity timeout ", s.affinity_timeout, "s is over a week"));
  if (ActiveSlots(s).size() > limits.max_slots)
    return absl::InvalidArgumentError(absl::StrCat("service ", name, ": weights expand to more than ",
                                                   limits.max_slots, " slots; use smaller weights"));
  return absl::OkStatus();
}

std::vector<uint32_t> ActiveSlots(const Service& s) {
  uint32_t g = 0;
  for (const Backend& b : s.backends)
    if (b.state == BackendState::kActive && b.weight > 0) g = std::gcd(g, b.weight);
  std::vector<uint32_t> slots;
  if (g == 0) return slots;
  for (const Backend& b : s.backends) {
    if (b.state != BackendState::kActive || b.weight == 0) continue;
    for (uint32_t i = 0; i < b.weight / g; ++i) slots.push_back(b.id);
  }
  return slots;
}

nlohmann::json ServiceToJson(const Service& s) {
  nlohmann::json bs = nlohmann::json::array();
  for (const Backend& b : s.backends)
    bs.push_back({{"id", b.id},
                  {"address", b.Address()},
                  {"weight", b.weight},
                  {"state", BackendStateName(b.state)}});
  return {{"id", s.id},
          {"frontend", s.frontend.ToString()},
          {"type", s.type},
          {"algorithm", AlgorithmName(s.algorithm)},
          {"affinity_timeout", s.affinity_timeout},
          {"backends", bs}};
}

absl::StatusOr<Service> ServiceFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("service must be an object");
  Service s;
  try {
    s.id = j.value("id", 0);
    TND_ASSIGN_OR_RETURN(s.frontend, ParseFrontend(j.at("frontend").get<std::string>()));
    s.type = j.value("type", std::string("ClusterIP"));
    TND_ASSIGN_OR_RETURN(s.algorithm, ParseAlgorithm(j.value("algorithm", std::string("random"))));
    s.affinity_timeout = j.value("affinity_timeout", 0u);
    for (const auto& bj : j.value("backends", nlohmann::json::array())) {
      TND_ASSIGN_OR_RETURN(Backend b, ParseBackend(bj.at("address").get<std::string>()));
      b.id = bj.value("id", 0u);
      b.weight = bj.value("weight", 1u);
      TND_ASSIGN_OR_RETURN(b.state, ParseBackendState(bj.value("state", std::string("active"))));
      s.backends.push_back(b);
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("service: ", e.what()));
  }
  if (j.contains("id") && (!j["id"].is_number_integer() || j["id"].get<int64_t>() < 0 || j["id"].get<int64_t>() > 65535))
    return absl::InvalidArgumentError("service id must be 1-65535");
  return s;
}

}  // namespace tendril
