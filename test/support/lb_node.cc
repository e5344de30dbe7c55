#include "test/support/lb_node.h"

#include <gtest/gtest.h>
#include <net/if.h>

#include <fstream>
#include <string>
#include <vector>

namespace tendril::test {

uint32_t BuildLbNode(const Netns& ns) {
  const std::vector<std::string> cmds = {
      "link add tn0 address 02:00:00:00:01:01 type veth peer name tn1",
      "link add lx0 address 02:00:00:00:02:01 type veth peer name lx1",
      "link set tn0 up",
      "link set tn1 up",
      "link set lx0 up",
      "link set lx1 up",
      "addr add 10.0.0.1/24 dev tn0",
      "addr add fd00::1/64 dev tn0 nodad",
      "addr add 10.1.1.1/24 dev lx0",
      "addr add fd01::1/64 dev lx0 nodad",
      "route add 10.1.2.0/24 via 10.0.0.2",
      "route add fd02::/64 via fd00::2",
      "neigh add 10.0.0.2 lladdr 02:00:00:00:01:02 dev tn0 nud permanent",
      "neigh add 10.0.0.100 lladdr 02:00:00:00:01:64 dev tn0 nud permanent",
      "neigh add fd00::2 lladdr 02:00:00:00:01:02 dev tn0 nud permanent",
      "neigh add fd00::100 lladdr 02:00:00:00:01:64 dev tn0 nud permanent",
      "neigh add 10.1.1.2 lladdr 02:00:00:00:02:02 dev lx0 nud permanent",
  };
  std::string out;
  if (ns.IpBatch(cmds, &out) != 0) {
    ADD_FAILURE() << "ip -batch (the node's links, addresses, routes, neighbours): " << out;
    return 0;
  }
  // The thread enters the namespace: /proc/sys/net and interface names
  // resolve in the namespace of whoever looks.
  NetnsGuard g(ns);
  for (const char* knob : {"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"}) {
    std::ofstream f(knob);
    f << "1\n";
    if (!f.flush()) {
      ADD_FAILURE() << "cannot write 1 to " << knob;
      return 0;
    }
  }
  uint32_t idx = if_nametoindex("tn0");
  EXPECT_NE(idx, 0u) << "tn0 has no ifindex in " << ns.name();
  return idx;
}

}  // namespace tendril::test
