// `tendril service`: declare, change and list services through the agent. The
// flags become the service model here (lb/service.h) and go to the agent in
// the one JSON codec both ends use (lb/service_json.h).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "cli/cli.h"
#include "cli/format.h"
#include "common/api_client.h"
#include "common/file_util.h"
#include "common/json_fields.h"
#include "common/status.h"
#include "lb/service.h"
#include "lb/service_json.h"

namespace tendril::cli {
namespace {

using nlohmann::json;

std::string BackendsCell(const json& svc) {
  std::vector<std::string> parts;
  for (const auto& b : svc.value("backends", json::array())) {
    std::string p = b.value("address", "");
    if (b.value("weight", 1) != 1) p += "@" + std::to_string(b.value("weight", 1));
    if (b.value("state", "active") != "active") p += " (" + b.value("state", "") + ")";
    parts.push_back(p);
  }
  return parts.empty() ? "(none)" : absl::StrJoin(parts, ", ");
}

std::string ExternalCell(const json& s) {
  if (s.value("type", "ClusterIP") == "ClusterIP")
    return s.value("internal_traffic_policy", "Cluster") == "Local" ? "internal Local" : "-";
  std::vector<std::string> parts;
  if (s.contains("node_port")) parts.push_back(absl::StrCat("nodeport :", s.value("node_port", 0)));
  for (const auto& ip : s.value("external_ips", json::array())) {
    std::string a = ip.get<std::string>();
    std::string port = s.value("frontend", "");
    port = port.substr(port.rfind(':') + 1);
    port = port.substr(0, port.find('/'));
    parts.push_back(a.find(':') != std::string::npos ? absl::StrCat("[", a, "]:", port) : absl::StrCat(a, ":", port));
  }
  parts.push_back(s.value("traffic_policy", "Cluster"));
  if (s.value("internal_traffic_policy", "Cluster") == "Local") parts.push_back("internal Local");
  if (s.value("dsr", false)) parts.push_back("DSR");
  if (s.contains("source_ranges"))
    parts.push_back("from " + absl::StrJoin(s["source_ranges"].get<std::vector<std::string>>(), " "));
  if (s.value("health_check_port", 0)) parts.push_back(absl::StrCat("health :", s.value("health_check_port", 0)));
  return absl::StrJoin(parts, ", ");
}

void PrintServices(const json& list) {
  Table t({"ID", "FRONTEND", "TYPE", "EXTERNAL", "ALGORITHM", "AFFINITY", "BACKENDS"});
  for (const auto& s : list)
    t.AddRow({std::to_string(s.value("id", 0)), s.value("frontend", ""), s.value("type", ""), ExternalCell(s),
              s.value("algorithm", ""),
              s.value("affinity_timeout", 0) ? std::to_string(s.value("affinity_timeout", 0)) + "s" : "-",
              BackendsCell(s)});
  std::printf("%s", t.Render().c_str());
}

int PrintResult(const Globals& g, const absl::StatusOr<json>& r) {
  if (!r.ok()) return Fail(r.status());
  if (g.json())
    PrintJson(*r);
  else if (r->is_array())
    PrintServices(*r);
  else
    PrintServices(json::array({*r}));
  return 0;
}

struct ServiceArgs {
  std::string frontend, type = "ClusterIP", algorithm, traffic_policy, internal_traffic_policy;
  std::vector<std::string> backends, states, external_ips, source_ranges;
  int64_t affinity = -1;
  int64_t id = 0;
  int64_t node_port = 0;
  int64_t health_check_port = 0;
  bool clear_backends = false;
  bool clear_source_ranges = false;
  std::string dsr;  // "", "true", "false"
};

// Each flag is parsed once, here, into the service model; every error is
// collected so that one run names all that is wrong (exit 2, nothing sent).
class Parsed {
 public:
  template <typename T>
  void Take(absl::StatusOr<T> r, T& out, absl::string_view what = "") {
    if (r.ok())
      out = std::move(*r);
    else
      errors_.push_back(absl::StrCat(what, r.status().message()));
  }
  template <typename T, typename Fn>
  std::vector<T> Each(const std::vector<std::string>& texts, Fn parse, absl::string_view what = "") {
    std::vector<T> out;
    for (const auto& t : texts) {
      T v{};
      Take<T>(parse(t), v, what);
      out.push_back(v);
    }
    return out;
  }
  absl::Status status() const { return errors_.empty() ? absl::OkStatus() : BadInput(errors_); }

 private:
  std::vector<std::string> errors_;
};

// The flags `add` and `update` share, as an update (set: given).
ServiceUpdate ExternalFromArgs(const ServiceArgs& a, Parsed& p) {
  ServiceUpdate u;
  TrafficPolicy tp{};
  if (!a.traffic_policy.empty()) p.Take(ParseTrafficPolicy(a.traffic_policy), *(u.traffic_policy = tp));
  if (!a.internal_traffic_policy.empty())
    p.Take(ParseTrafficPolicy(a.internal_traffic_policy), *(u.internal_traffic_policy = tp));
  if (!a.external_ips.empty()) u.external_ips = p.Each<IpAddr>(a.external_ips, ParseIp, "external IP: ");
  if (!a.source_ranges.empty() || a.clear_source_ranges)
    u.source_ranges = p.Each<Cidr>(a.source_ranges, [](const std::string& t) { return ParseCidr(t); }, "source range: ");
  if (!a.dsr.empty()) u.dsr = a.dsr == "true";
  if (!a.algorithm.empty()) p.Take(ParseAlgorithm(a.algorithm), *(u.algorithm = Algorithm{}));
  if (a.affinity >= 0) u.affinity_timeout = static_cast<uint32_t>(a.affinity);
  return u;
}

absl::StatusOr<Service> ServiceFromArgs(const ServiceArgs& a) {
  Parsed p;
  Service s;
  p.Take(ParseFrontend(a.frontend), s.frontend);
  p.Take(ParseServiceType(a.type), s.type);
  s.backends = p.Each<Backend>(a.backends, ParseBackend);
  s.id = static_cast<ServiceId>(a.id);
  s.node_port = static_cast<uint16_t>(a.node_port);
  s.health_check_port = static_cast<uint16_t>(a.health_check_port);
  ServiceUpdate x = ExternalFromArgs(a, p);
  TND_RETURN_IF_ERROR(p.status());
  s.traffic_policy = x.traffic_policy.value_or(s.traffic_policy);
  s.internal_traffic_policy = x.internal_traffic_policy.value_or(s.internal_traffic_policy);
  s.external_ips = x.external_ips.value_or(s.external_ips);
  s.source_ranges = x.source_ranges.value_or(s.source_ranges);
  s.dsr = x.dsr.value_or(false);
  s.algorithm = x.algorithm.value_or(s.algorithm);
  s.affinity_timeout = x.affinity_timeout.value_or(0);
  return s;
}

absl::StatusOr<ServiceUpdate> UpdateFromArgs(const ServiceArgs& a) {
  Parsed p;
  ServiceUpdate u = ExternalFromArgs(a, p);
  if (!a.backends.empty() || a.clear_backends) u.backends = p.Each<Backend>(a.backends, ParseBackend);
  u.states = p.Each<BackendStateChange>(a.states, ParseBackendStateChange, "--backend-state: ");
  TND_RETURN_IF_ERROR(p.status());
  if (u.empty())
    return absl::InvalidArgumentError(
        "nothing to update: give --backends, --backend-state, --algorithm, --affinity-timeout, "
        "--traffic-policy, --internal-traffic-policy, --external-ips, --source-ranges or --dsr");
  return u;
}

int CmdServiceAdd(const Globals& g, const ServiceArgs& a) {
  auto s = ServiceFromArgs(a);
  if (!s.ok()) return Fail(s.status());
  return PrintResult(g, CallAgent(g.api_socket, "service.add", {{"service", ServiceToJson(*s)}}));
}

int CmdServiceUpdate(const Globals& g, int64_t id, const ServiceArgs& a) {
  auto u = UpdateFromArgs(a);
  if (!u.ok()) return Fail(u.status());
  json args = ServiceUpdateToJson(*u);
  args["id"] = id;
  return PrintResult(g, CallAgent(g.api_socket, "service.update", args));
}

int CmdServiceApply(const Globals& g, const std::string& file) {
  // The file is mapped (stdin read) and sent as it is: the agent parses it
  // once and says which service is wrong. Only if the agent finds it is not
  // JSON is it parsed here, for the error's line and column in the file.
  std::string piped;
  MappedFile mapped;
  bool is_piped = file == "-";
  if (is_piped) {
    piped.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else if (auto m = MappedFile::Open(file); m.ok()) {
    mapped = std::move(*m);
  } else {
    // Not a regular file (a pipe, `<(...)`): read to its end.
    auto read = m.status().code() == absl::StatusCode::kInvalidArgument ? ReadFile(file) : m.status();
    if (!read.ok()) return Fail(absl::NotFoundError(absl::StrCat("cannot read ", file, ": ", read.status().message())));
    piped = std::move(*read);
    is_piped = true;
  }
  absl::Span<char> text = is_piped ? absl::Span<char>(piped.data(), piped.size())
                                   : absl::Span<char>(mapped.data(), mapped.size());
  const absl::string_view view(text.data(), text.size());
  const size_t first = view.find_first_not_of(" \t\r\n");
  const char top = first == absl::string_view::npos ? 0 : view[first];
  if (top != '[' && top != '{') {
    absl::StatusOr<json> parsed = jsonf::Parse(view);  // not JSON at all, or JSON of another kind
    if (!parsed.ok()) return Fail(Annotate(parsed.status(), file));
    return Fail(absl::InvalidArgumentError(absl::StrCat(file, ": expected an array of services (or {\"services\": [...]})")));
  }
  std::string open = "{\"services\":", close = "}";
  std::vector<absl::Span<char>> pieces = {text};
  if (top == '[') pieces = {absl::Span<char>(open.data(), open.size()), text, absl::Span<char>(close.data(), close.size())};
  auto r = CallAgentPieces(g.api_socket, "service.apply", pieces, 120000);
  if (!r.ok() && absl::StartsWith(r.status().message(), "request: ")) {
    absl::StatusOr<json> parsed = jsonf::Parse(view);  // not JSON: where in the file
    if (!parsed.ok()) return Fail(Annotate(parsed.status(), file));
  }
  if (!r.ok() || g.json()) return PrintResult(g, r);
  std::printf("%d services declared: %d added, %d changed, %d removed (%d map writes, %d deletes)\n",
              r->value("services", 0), r->value("added", 0), r->value("changed", 0), r->value("removed", 0),
              r->value("map_writes", 0), r->value("map_deletes", 0));
  return 0;
}

int CmdServiceDelete(const Globals& g, int64_t id, const std::string& frontend) {
  json args;
  if (id) args["id"] = id;
  else if (!frontend.empty()) args["frontend"] = frontend;
  else return Fail(absl::InvalidArgumentError("give a service ID or --frontend"));
  auto r = CallAgent(g.api_socket, "service.delete", args);
  if (!r.ok()) return Fail(r.status());
  if (g.json()) PrintJson(*r);
  else std::printf("deleted service %d (%s)\n", r->value("id", 0), r->value("frontend", "").c_str());
  return 0;
}

}  // namespace

void AddServiceCommands(CLI::App& app, Cli& c) {
  auto sa = std::make_shared<ServiceArgs>();
  auto id = std::make_shared<int64_t>(0);
  auto* svc = app.add_subcommand("service", "services: ClusterIP (socket LB), NodePort, ExternalIP, LoadBalancer (per packet)");
  svc->require_subcommand(1);
  auto* add = svc->add_subcommand("add", "declare a service");
  add->add_option("--frontend", sa->frontend, "VIP:PORT/PROTO, e.g. 10.96.0.10:80/TCP or [fd00::10]:53/UDP")->required();
  add->add_option("--backends", sa->backends, "ADDR:PORT[@WEIGHT],... ")->delimiter(',');
  add->add_option("--type", sa->type, "ClusterIP (default), NodePort, ExternalIP or LoadBalancer");
  add->add_option("--node-port", sa->node_port, "NodePort/LoadBalancer: the node port (default: allocated)")
      ->check(CLI::Range(1, 65535));
  add->add_option("--external-ips", sa->external_ips, "ExternalIP/LoadBalancer: addresses,...")->delimiter(',');
  add->add_option("--traffic-policy", sa->traffic_policy, "externalTrafficPolicy: Cluster (default) or Local");
  add->add_option("--internal-traffic-policy", sa->internal_traffic_policy,
                  "internalTrafficPolicy (the ClusterIP): Cluster (default) or Local");
  add->add_option("--health-check-port", sa->health_check_port,
                  "traffic policy Local: healthCheckNodePort (default: allocated)")
      ->check(CLI::Range(1, 65535));
  add->add_option("--source-ranges", sa->source_ranges, "LoadBalancer: clients allowed on its IPs: CIDR,...")
      ->delimiter(',');
  add->add_flag("--dsr{true}", sa->dsr, "remote backends answer clients directly");
  add->add_option("--algorithm", sa->algorithm, "random (default) or maglev");
  add->add_option("--affinity-timeout", sa->affinity, "ClientIP session affinity, seconds (0: off)")
      ->check(CLI::Range(0, 604800));
  add->add_option("--id", sa->id, "service id (default: the lowest free)")
      ->check(CLI::Range(int64_t{1}, int64_t{UINT32_MAX}));
  add->callback([&c, sa] { c.rc = CmdServiceAdd(c.g, *sa); });
  auto file = std::make_shared<std::string>();
  auto* apply = svc->add_subcommand("apply", "declare the whole set of services from a JSON file (others are removed)");
  apply->add_option("-f,--file", *file, "JSON: an array of services as `service list -o json` prints them; - for stdin")
      ->required();
  apply->callback([&c, file] { c.rc = CmdServiceApply(c.g, *file); });
  auto* upd = svc->add_subcommand("update", "change a service's backends, their states, algorithm or affinity");
  upd->add_option("id", *id, "service id")->required();
  upd->add_option("--backends", sa->backends, "replace the backends: ADDR:PORT[@WEIGHT],...")->delimiter(',');
  upd->add_flag("--no-backends", sa->clear_backends, "remove every backend (connects are then refused)");
  upd->add_option("--backend-state", sa->states, "ADDR:PORT=active|terminating|maintenance (repeatable)");
  upd->add_option("--algorithm", sa->algorithm, "random or maglev");
  upd->add_option("--affinity-timeout", sa->affinity, "seconds (0: off)")->check(CLI::Range(0, 604800));
  upd->add_option("--traffic-policy", sa->traffic_policy, "Cluster or Local");
  upd->add_option("--internal-traffic-policy", sa->internal_traffic_policy, "Cluster or Local");
  upd->add_option("--external-ips", sa->external_ips, "replace the external IPs: ADDR,...")->delimiter(',');
  upd->add_option("--source-ranges", sa->source_ranges, "replace the source ranges: CIDR,...")->delimiter(',');
  upd->add_flag("--no-source-ranges", sa->clear_source_ranges, "allow every client again");
  upd->add_option("--dsr", sa->dsr, "true or false")->check(CLI::IsMember({"true", "false"}));
  upd->callback([&c, sa, id] { c.rc = CmdServiceUpdate(c.g, *id, *sa); });
  auto* del = svc->add_subcommand("delete", "remove a service");
  del->add_option("id", *id, "service id");
  del->add_option("--frontend", sa->frontend, "or its frontend");
  del->callback([&c, sa, id] { c.rc = CmdServiceDelete(c.g, *id, sa->frontend); });
  auto* get = svc->add_subcommand("get", "one service");
  get->add_option("id", *id, "service id")->required();
  get->callback([&c, id] { c.rc = PrintResult(c.g, CallAgent(c.g.api_socket, "service.get", {{"id", *id}})); });
  svc->add_subcommand("list", "declared services")->callback([&c] {
    c.rc = PrintResult(c.g, CallAgent(c.g.api_socket, "service.list"));
  });
}

}  // namespace tendril::cli
