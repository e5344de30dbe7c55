// Run-time compilation of bpf/ with clang against a generated config header,
// cached by a hash of the sources, the header and the compiler's version.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tendril_build_config.h"
#include "maps/abi.h"

namespace tendril {

// What the BPF code is compiled for: only settings the programs read, so
// that nodes with the same settings share objects.
struct Features {
  bool ipv4 = true;
  bool ipv6 = true;
  bool prefilter = true;
  bool nodeport = true;  // per-packet LB in XDP (bpf_host.o has it always)
  bool masquerade = true;  // endpoints' traffic leaving a native device
  uint32_t maglev_table_size = 16381;
  uint16_t nat_port_min = TND_NAT_PORT_MIN_DEFAULT;  // SNAT source ports
  uint16_t nat_port_max = TND_NAT_PORT_MAX_DEFAULT;
};

// The tendril_config.h the agent compiles with: one macro per feature,
// nothing about the node. Deterministic in its inputs.
std::string RenderConfigHeader(const Features& features);

// The inputs of a build, each hashed (16 hex digits of FNV-1a 64, every
// string prefixed by its length so that no two different input lists hash
// the same stream; a cache key, not a security boundary).
struct CacheInputs {
  std::string sources, config_header, compiler, flags;
  std::string Key() const;  // of the four together
};
CacheInputs HashInputs(const std::map<std::string, std::string>& sources, const std::string& config_header,
                       const std::string& compiler_version, const std::vector<std::string>& flags);
// Why `now` needs other objects than `before` (the previous build in the
// cache): "sources changed", "config header changed", ... joined by ", ".
std::string WhyRebuilt(const CacheInputs& before, const CacheInputs& now);
std::string CacheKey(const std::map<std::string, std::string>& sources,
                     const std::string& config_header, const std::string& compiler_version);

// bpf/objects.mk's BPF_CFLAGS (Makefile.bpf compiles with the same).
const std::vector<std::string>& BpfCflags();

struct CompileRequest {
  std::string src_dir;    // holds bpf/ and maps/
  std::string cache_dir;  // objects land in cache_dir/<key>/
  std::string clang = "clang";
  std::string config_header;  // contents of tendril_config.h
  std::vector<std::string> objects = TENDRIL_BPF_PROGS;  // bpf/objects.mk
};

struct CompileResult {
  std::string key;
  // Why this build's key differs from the last one this cache saw: "first
  // build in this cache", "sources changed", "config header changed", ...
  std::string why;
  std::map<std::string, std::string> object_paths;  // name -> .o path
  bool cache_hit = false;
};

absl::StatusOr<std::string> CompilerVersion(const std::string& clang);

// Reads bpf/*.c, bpf/lib/*.h and maps/tendril_maps*.h under src_dir.
absl::StatusOr<std::map<std::string, std::string>> ReadBpfSources(const std::string& src_dir);

absl::StatusOr<CompileResult> CompileBpf(const CompileRequest& req);

}  // namespace tendril
