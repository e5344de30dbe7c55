// The agent's settings as YAML (--config FILE) and as flags (argv). The first
// byte chooses: 'Y' YAML text follows, anything else is argv split at NUL
// bytes (--config is left to the YAML mode). Invariants: parsing never crashes or throws; a config that parses
// and validates has ranges that hold together.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/config.h"

using namespace tendril;

namespace {
void CheckRanges(const AgentConfig& cfg) {
  if (cfg.node_port_min > cfg.node_port_max || cfg.nat_port_min > cfg.nat_port_max) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] == 'Y') {
    AgentConfig cfg;
    if (ApplyYamlConfig(rest, &cfg).ok() && ValidateConfig(cfg).ok()) CheckRanges(cfg);
    return 0;
  }
  std::vector<std::string> args = {"tendril-agent"};
  std::string cur;
  for (char c : rest) {
    if (c == '\0') {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) args.push_back(cur);
  if (args.size() > 64) return 0;
  // --config names a file to read: the YAML mode covers its contents, and a
  // fuzzed path must not read /dev/zero.
  for (const auto& a : args)
    if (a.find("conf") != std::string::npos) return 0;
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  auto parsed = ParseAgentArgs(static_cast<int>(argv.size()), argv.data());
  if (parsed.ok() && !parsed->exit_now && ValidateConfig(parsed->config).ok()) CheckRanges(parsed->config);
  return 0;
}
