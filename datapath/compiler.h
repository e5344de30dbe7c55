// Run-time compilation of bpf/ with clang against a generated config header,
// cached by a hash of the sources, the header and the compiler's version.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lb/service.h"
#include "maps/abi.h"

namespace tendril {

struct DeviceFacts {
  std::vector<IpAddr> addresses;
  std::string name;
  int ifindex = 0;
  std::string mac;  // "aa:bb:cc:dd:ee:ff"
};

struct NodeFacts {
  std::string hostname;
  std::vector<DeviceFacts> devices;
};

struct Features {
  bool ipv4 = true;
  bool ipv6 = true;
  bool prefilter = true;
  bool socket_lb = true;
  bool nodeport = true;  // per-packet LB in XDP (bpf_host.o has it always)
  bool masquerade = true;  // endpoints' traffic leaving a native device
  uint32_t maglev_table_size = 16381;
  uint16_t nat_port_min = TND_NAT_PORT_MIN_DEFAULT;  // SNAT source ports
  uint16_t nat_port_max = TND_NAT_PORT_MAX_DEFAULT;
};

// The tendril_config.h the agent compiles with. Deterministic in its inputs.
std::string RenderConfigHeader(const NodeFacts& node, const Features& features);

// 16 hex digits of FNV-1a 64 over every input, each prefixed by its length so
// that no two different input lists hash the same stream. A cache key, not a
// security boundary.
std::string CacheKey(const std::map<std::string, std::string>& sources,
                     const std::string& config_header, const std::string& compiler_version);

struct CompileRequest {
  std::string src_dir;    // holds bpf/ and maps/
  std::string cache_dir;  // objects land in cache_dir/<key>/
  std::string clang = "clang";
  std::string config_header;  // contents of tendril_config.h
  std::vector<std::string> objects = {"bpf_xdp", "bpf_sock", "bpf_host", "bpf_lxc"};
};

struct CompileResult {
  std::string key;
  std::map<std::string, std::string> object_paths;  // name -> .o path
  bool cache_hit = false;
};

absl::StatusOr<std::string> CompilerVersion(const std::string& clang);

// Reads bpf/*.c, bpf/lib/*.h and maps/tendril_maps.h under src_dir.
absl::StatusOr<std::map<std::string, std::string>> ReadBpfSources(const std::string& src_dir);

absl::StatusOr<CompileResult> CompileBpf(const CompileRequest& req);

}  // namespace tendril
