#include "test/support/servers.h"

#include <fstream>

#include "absl/strings/str_cat.h"

namespace tendril::test {

std::vector<std::string> UdpNameServer(const Netns& ns, const std::string& name, const std::string& bind_v4) {
  const std::string sock = bind_v4.empty()
                               ? "s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n"
                                 "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)\ns.bind(('::',5353))\n"
                               : absl::StrCat("s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('", bind_v4,
                                              "',5353))\n");
  return {"ip", "netns", "exec", ns.name(), "python3", "-u", "-c",
          absl::StrCat("import socket\n", sock, "print('ready')\nwhile True:\n d,a=s.recvfrom(2048)\n",
                       " s.sendto(b'", name, "\\n',a)\n print('from',a[0],a[1])")};
}

void StartNamedServers(const Netns& ns, const std::string& name, const std::string& scripts_dir, NamedServers* out) {
  std::string http = absl::StrCat(scripts_dir, "/http-", name, ".sh");
  std::ofstream(http) << "#!/bin/sh\nread -r _req\nprintf 'HTTP/1.0 200 OK\\r\\n\\r\\n%s %s' " << name
                      << " \"$SOCAT_PEERADDR\"\n";
  Sh({"chmod", "+x", http});
  auto run = [&](std::vector<std::string> args) {
    std::vector<std::string> full = {"ip", "netns", "exec", ns.name()};
    full.insert(full.end(), args.begin(), args.end());
    out->all.push_back(std::make_unique<Subprocess>(full));
  };
  run({"socat", "TCP4-LISTEN:8080,fork,reuseaddr", "EXEC:" + http});
  run({"socat", "TCP6-LISTEN:8080,fork,reuseaddr,ipv6only=1", "EXEC:" + http});
  out->all.push_back(std::make_unique<Subprocess>(UdpNameServer(ns, name)));
  out->udp.push_back(out->all.back().get());
  run({"iperf3", "-s", "-p", "5201"});
}

}  // namespace tendril::test
