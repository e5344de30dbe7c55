// The servers the end-to-end tests put in their namespaces, so a client can
// tell where a request went and what it looked like there:
//   TCP 8080 (IPv4 and IPv6): HTTP answering "<name> <client address it sees>"
//   UDP 5353 (IPv4 and IPv6, one process): answers "<name>\n", logs each
//            datagram's sender, prints "ready" once bound
//   TCP 5201: iperf3
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "test/support/kernel.h"

namespace tendril::test {

struct NamedServers {
  std::vector<std::unique_ptr<Subprocess>> all;
  std::vector<Subprocess*> udp;  // one per StartNamedServers call, for readiness and logs
};

// Starts them in `ns`; the HTTP answer script is written to `scripts_dir`.
void StartNamedServers(const Netns& ns, const std::string& name, const std::string& scripts_dir, NamedServers* out);

// The UDP server alone on port 5353, answering each datagram with `name`
// (a python process: socat's fork per datagram let a lingering child take
// the next peer's datagram and drop it, and under load answered later than
// a client waits). On every address, or only on IPv4 address `bind_v4`.
std::vector<std::string> UdpNameServer(const Netns& ns, const std::string& name, const std::string& bind_v4 = "");

}  // namespace tendril::test
