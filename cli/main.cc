// tendril: inspect and control a tendril-agent and its pinned BPF maps. One
// file per command family (cmd_*.cc); this wires them into one command tree.
#include <cstdio>
#include <cstdlib>

#include "cli/cli.h"
#include "tendril_build_config.h"

namespace tendril::cli {

int Main(int argc, char** argv) {
  Cli c;
  if (const char* e = std::getenv("TENDRIL_API_SOCKET")) c.g.api_socket = e;
  if (const char* e = std::getenv("TENDRIL_BPFFS_ROOT")) c.g.bpffs_root = e;

  CLI::App app{"tendril: inspect and control the tendril eBPF datapath", "tendril"};
  app.fallthrough();
  app.require_subcommand(1);
  app.add_option("--api-socket", c.g.api_socket, "agent API socket (env TENDRIL_API_SOCKET)");
  app.add_option("--bpffs-root", c.g.bpffs_root, "bpffs root of the pins (env TENDRIL_BPFFS_ROOT)");
  app.add_option("-o,--output", c.g.output, "output format")->check(CLI::IsMember({"table", "json"}));

  AddStatusCommand(app, c);
  AddPrefilterCommands(app, c);
  AddMetricsCommands(app, c);
  AddServiceCommands(app, c);
  auto* bpf = app.add_subcommand("bpf", "what is in the pinned maps (works with the agent down)");
  bpf->require_subcommand(1);
  AddBpfLbCommands(*bpf, c);
  AddBpfConntrackCommands(*bpf, c);
  AddEndpointCommands(app, *bpf, c);
  AddMonitorCommand(app, c);
  AddExplainCommand(app, c);
  app.add_subcommand("version", "print the version")->callback([] { std::printf("tendril %s\n", TENDRIL_VERSION); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints help or the error
    return rc == 0 ? 0 : 2;  // bad input: nothing was changed
  }
  return c.rc;
}

}  // namespace tendril::cli

int main(int argc, char** argv) { return tendril::cli::Main(argc, argv); }
