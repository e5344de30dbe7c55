#include "test/support/lb_node.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_join.h"

namespace tendril::test {

uint32_t BuildLbNode(const Netns& ns) {
  const std::vector<std::vector<std::string>> cmds = {
      {"ip", "link", "add", "tn0", "address", "02:00:00:00:01:01", "type", "veth", "peer", "name", "tn1"},
      {"ip", "link", "add", "lx0", "address", "02:00:00:00:02:01", "type", "veth", "peer", "name", "lx1"},
      {"ip", "link", "set", "tn0", "up"},
      {"ip", "link", "set", "tn1", "up"},
      {"ip", "link", "set", "lx0", "up"},
      {"ip", "link", "set", "lx1", "up"},
      {"ip", "addr", "add", "10.0.0.1/24", "dev", "tn0"},
      {"ip", "addr", "add", "fd00::1/64", "dev", "tn0", "nodad"},
      {"ip", "addr", "add", "10.1.1.1/24", "dev", "lx0"},
      {"ip", "addr", "add", "fd01::1/64", "dev", "lx0", "nodad"},
      {"ip", "route", "add", "10.1.2.0/24", "via", "10.0.0.2"},
      {"ip", "route", "add", "fd02::/64", "via", "fd00::2"},
      {"ip", "neigh", "add", "10.0.0.2", "lladdr", "02:00:00:00:01:02", "dev", "tn0", "nud", "permanent"},
      {"ip", "neigh", "add", "10.0.0.100", "lladdr", "02:00:00:00:01:64", "dev", "tn0", "nud", "permanent"},
      {"ip", "neigh", "add", "fd00::2", "lladdr", "02:00:00:00:01:02", "dev", "tn0", "nud", "permanent"},
      {"ip", "neigh", "add", "fd00::100", "lladdr", "02:00:00:00:01:64", "dev", "tn0", "nud", "permanent"},
      {"ip", "neigh", "add", "10.1.1.2", "lladdr", "02:00:00:00:02:02", "dev", "lx0", "nud", "permanent"},
      {"sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"},
  };
  for (const auto& argv : cmds) {
    std::string out;
    if (ns.Exec(argv, &out) != 0) {
      ADD_FAILURE() << absl::StrJoin(argv, " ") << ": " << out;
      return 0;
    }
  }
  std::string idx;
  if (ns.Exec({"cat", "/sys/class/net/tn0/ifindex"}, &idx) != 0) return 0;
  return static_cast<uint32_t>(std::stoul(idx));
}

}  // namespace tendril::test
