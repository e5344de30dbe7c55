// The agent's YAML config (--config FILE). Invariants: applying never
// crashes or throws; a config that applies and validates has ranges that
// hold together.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "agent/config.h"

using namespace tendril;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  AgentConfig cfg;
  if (!ApplyYamlConfig(std::string(reinterpret_cast<const char*>(data), size), &cfg).ok()) return 0;
  if (!ValidateConfig(cfg).ok()) return 0;
  if (cfg.node_port_min > cfg.node_port_max || cfg.nat_port_min > cfg.nat_port_max) std::abort();
  return 0;
}
