// `tendril prefilter`: the CIDRs XDP drops before anything else.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cli.h"
#include "cli/format.h"
#include "common/api_client.h"
#include "network/cidr.h"

namespace tendril::cli {
namespace {

using nlohmann::json;

absl::Status ValidateCidrs(const std::vector<std::string>& cidrs) {
  std::vector<std::string> errors;
  for (const auto& c : cidrs)
    if (auto r = ParseCidr(c); !r.ok()) errors.emplace_back(r.status().message());
  return errors.empty() ? absl::OkStatus() : BadInput(errors);
}

int CmdPrefilterChange(const Globals& g, const std::string& op, const std::vector<std::string>& cidrs) {
  if (auto s = ValidateCidrs(cidrs); !s.ok()) return Fail(s);
  auto r = CallAgent(g.api_socket, op, {{"cidrs", cidrs}});
  if (!r.ok()) return Fail(r.status());
  if (g.json()) {
    PrintJson(*r);
    return 0;
  }
  for (const auto& c : r->value("added", json::array())) std::printf("added    %s\n", c.get<std::string>().c_str());
  for (const auto& c : r->value("already_present", json::array()))
    std::printf("present  %s (unchanged)\n", c.get<std::string>().c_str());
  for (const auto& c : r->value("deleted", json::array())) std::printf("deleted  %s\n", c.get<std::string>().c_str());
  return 0;
}

int CmdPrefilterList(const Globals& g) {
  auto r = CallAgent(g.api_socket, "prefilter.list");
  if (!r.ok()) return Fail(r.status());
  if (g.json()) {
    PrintJson(*r);
    return 0;
  }
  Table t({"CIDR", "FAMILY"});
  for (const auto& e : *r) t.AddRow({e.value("cidr", ""), e.value("family", "")});
  std::printf("%s", t.Render().c_str());
  return 0;
}

}  // namespace

void AddPrefilterCommands(CLI::App& app, Cli& c) {
  auto* pf = app.add_subcommand("prefilter", "XDP prefilter: CIDRs whose traffic is dropped");
  pf->require_subcommand(1);
  auto cidrs = std::make_shared<std::vector<std::string>>();
  auto* add = pf->add_subcommand("add", "deny traffic from CIDRs");
  add->add_option("cidrs", *cidrs, "CIDR...")->required();
  add->callback([&c, cidrs] { c.rc = CmdPrefilterChange(c.g, "prefilter.add", *cidrs); });
  auto* del = pf->add_subcommand("delete", "stop denying CIDRs");
  del->add_option("cidrs", *cidrs, "CIDR...")->required();
  del->callback([&c, cidrs] { c.rc = CmdPrefilterChange(c.g, "prefilter.delete", *cidrs); });
  pf->add_subcommand("list", "denied CIDRs")->callback([&c] { c.rc = CmdPrefilterList(c.g); });
}

}  // namespace tendril::cli
