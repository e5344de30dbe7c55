// `tendril endpoint` (the agent's declared endpoints) and `bpf endpoint list`
// (the endpoint map).
#include <algorithm>
#include <cstdio>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cli.h"
#include "cli/format.h"
#include "common/api_client.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"
#include "network/addr.h"

namespace tendril::cli {
namespace {

using nlohmann::json;

struct EndpointArgs {
  int64_t id = 0;
  std::string netns, ifname, container_ifname = "eth0";
  std::vector<std::string> ips;
};

void PrintEndpoints(const json& list) {
  Table t({"ID", "IFNAME", "IFINDEX", "ADDRESSES", "MODE", "NAMESPACE", "STATE"});
  for (const auto& e : list) {
    std::vector<std::string> ips;
    for (const auto& ip : e.value("ips", json::array())) ips.push_back(ip.get<std::string>());
    t.AddRow({std::to_string(e.value("id", 0)), e.value("ifname", ""), std::to_string(e.value("ifindex", 0)),
              absl::StrJoin(ips, ","), e.value("adopted", false) ? "adopted" : "created",
              e.value("netns", "").empty() ? "-" : e.value("netns", ""), e.value("state", "")});
  }
  std::printf("%s", t.Render().c_str());
}

int CmdEndpointAdd(const Globals& g, const EndpointArgs& a) {
  if (a.id < 1 || a.id > 65535) return Fail(absl::InvalidArgumentError("--id must be in 1-65535"));
  if (a.ips.empty()) return Fail(absl::InvalidArgumentError("give --ip ADDR[,ADDR6]"));
  for (const auto& ip : a.ips)
    if (auto p = ParseIp(ip); !p.ok()) return Fail(p.status());
  json ep = {{"id", a.id}, {"ifname", a.ifname}, {"ips", a.ips}, {"container_ifname", a.container_ifname}};
  if (!a.netns.empty()) ep["netns"] = a.netns;
  auto r = CallAgent(g.api_socket, "endpoint.add", {{"endpoint", ep}});
  if (!r.ok()) return Fail(r.status());
  if (g.json())
    PrintJson(*r);
  else
    PrintEndpoints(json::array({*r}));
  return 0;
}

int CmdEndpointList(const Globals& g) {
  auto r = CallAgent(g.api_socket, "endpoint.list", json::object());
  if (!r.ok()) return Fail(r.status());
  if (g.json())
    PrintJson(*r);
  else
    PrintEndpoints(*r);
  return 0;
}

// TND_EP_F_* as words: "adopted" (the veth was made by someone else),
// "xdp-rx" (XDP delivers into it).
std::string EndpointFlags(uint16_t flags) {
  std::vector<std::string> f;
  if (flags & TND_EP_F_ADOPTED) f.push_back("adopted");
  if (flags & TND_EP_F_XDP_RX) f.push_back("xdp-rx");
  return f.empty() ? "-" : absl::StrJoin(f, ",");
}

int CmdBpfEndpointList(const Globals& g) {
  auto m = Map<tnd_ep_key, tnd_endpoint>::OpenPin(g.pins().Map(TND_MAP_ENDPOINTS), TND_MAP_ENDPOINTS);
  if (!m.ok()) return Fail(m.status());
  json out = json::array();
  auto st = m->ForEach([&](const tnd_ep_key& k, const tnd_endpoint& v) {
    out.push_back({{"address", AddrText(k.addr, k.family)},
                   {"id", v.id},
                   {"ifindex", v.ifindex},
                   {"mac", MacToString(v.mac)},
                   {"node_mac", MacToString(v.node_mac)},
                   {"mtu", v.mtu},
                   {"flags", EndpointFlags(v.flags)}});
  });
  if (!st.ok()) return Fail(st);
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return std::tie(a["id"], a["address"]) < std::tie(b["id"], b["address"]);
  });
  if (g.json()) {
    PrintJson(out);
    return 0;
  }
  Table t({"ADDRESS", "ENDPOINT", "IFINDEX", "MAC", "NODE MAC", "MTU", "FLAGS"});
  for (const auto& e : out)
    t.AddRow({e.value("address", ""), std::to_string(e.value("id", 0)), std::to_string(e.value("ifindex", 0)),
              e.value("mac", ""), e.value("node_mac", ""), std::to_string(e.value("mtu", 0)),
              e.value("flags", "")});
  std::printf("%s", t.Render().c_str());
  return 0;
}

int CmdEndpointDelete(const Globals& g, int64_t id) {
  if (id < 1 || id > 65535) return Fail(absl::InvalidArgumentError("endpoint id must be in 1-65535"));
  auto r = CallAgent(g.api_socket, "endpoint.delete", {{"id", id}});
  if (!r.ok()) return Fail(r.status());
  if (g.json())
    PrintJson(*r);
  else
    std::printf("endpoint %lld deleted\n", static_cast<long long>(id));
  return 0;
}

}  // namespace

void AddEndpointCommands(CLI::App& app, CLI::App& bpf, Cli& c) {
  auto ea = std::make_shared<EndpointArgs>();
  auto* epc = app.add_subcommand("endpoint", "endpoints (pods): veth, addresses, routes, eBPF host routing");
  epc->require_subcommand(1);
  auto* add = epc->add_subcommand("add", "create an endpoint's veth in a namespace, or adopt an existing veth");
  add->add_option("--id", ea->id, "endpoint id, 1-65535")->required();
  add->add_option("--netns", ea->netns, "namespace to create the veth's other end in (path); omit to adopt --ifname");
  add->add_option("--ifname", ea->ifname, "host-side device name")->required();
  add->add_option("--ip", ea->ips, "ADDR[,ADDR6]: the endpoint's addresses")->required()->delimiter(',');
  add->add_option("--container-ifname", ea->container_ifname, "device name inside the namespace (default eth0)");
  add->callback([&c, ea] { c.rc = CmdEndpointAdd(c.g, *ea); });
  auto* del = epc->add_subcommand("delete", "remove an endpoint (and the veth the agent made)");
  del->add_option("--id,id", ea->id, "endpoint id")->required();
  del->callback([&c, ea] { c.rc = CmdEndpointDelete(c.g, ea->id); });
  epc->add_subcommand("list", "declared endpoints")->callback([&c] { c.rc = CmdEndpointList(c.g); });
  auto* bep = bpf.add_subcommand("endpoint", "endpoint map");
  bep->require_subcommand(1);
  bep->add_subcommand("list", "address -> veth ifindex, MACs, endpoint id")->callback([&c] { c.rc = CmdBpfEndpointList(c.g); });
}

}  // namespace tendril::cli
