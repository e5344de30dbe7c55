// The CLI's shared pieces: global options, exit codes, and one registration
// function per command family (cmd_*.cc), each adding its subcommands, their
// flags (parsed into typed values) and what they do.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "datapath/paths.h"

namespace tendril::cli {

struct Globals {
  std::string api_socket = "/run/tendril/tendril.sock";
  std::string bpffs_root = "/sys/fs/bpf/tendril";
  std::string output = "table";
  bool json() const { return output == "json"; }
  // The pins under --bpffs-root (read by the `bpf` commands, which work with
  // the agent down).
  BpffsPaths pins() const { return BpffsPaths(bpffs_root); }
};

// What every command reads and where it leaves its exit code.
struct Cli {
  Globals g;
  int rc = 0;
};

// Exit codes: 0 ok, 1 operation failed, 2 bad input. Prints the error.
int Fail(const absl::Status& s);
void PrintJson(const nlohmann::json& j);
// An agent call's answer: printed as JSON with -o json, else by `table`.
int PrintAnswer(const Cli& c, const absl::StatusOr<nlohmann::json>& r, void (*table)(const nlohmann::json&));
// Every message and its parts, "; "-joined, as one bad-input error.
absl::Status BadInput(const std::vector<std::string>& errors);

// `bpf` holds the subcommands that read the pins.
void AddStatusCommand(CLI::App& app, Cli& c);
void AddPrefilterCommands(CLI::App& app, Cli& c);
void AddMetricsCommands(CLI::App& app, Cli& c);
void AddServiceCommands(CLI::App& app, Cli& c);
void AddEndpointCommands(CLI::App& app, CLI::App& bpf, Cli& c);
void AddBpfLbCommands(CLI::App& bpf, Cli& c);
void AddBpfConntrackCommands(CLI::App& bpf, Cli& c);
void AddMonitorCommand(CLI::App& app, Cli& c);
void AddExplainCommand(CLI::App& app, Cli& c);

}  // namespace tendril::cli
