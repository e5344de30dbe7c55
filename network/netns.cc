#include "network/netns.h"

#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/status.h"

namespace tendril {

absl::Status InNetns(const std::string& netns_path, absl::FunctionRef<absl::Status()> fn) {
  absl::Status out = absl::InternalError("namespace thread did not run");
  std::thread t([&] {
    UniqueFd fd(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      out = ErrnoError(errno, absl::StrCat("open network namespace ", netns_path));
      return;
    }
    if (::setns(fd.get(), CLONE_NEWNET) != 0) {
      out = ErrnoError(errno, absl::StrCat("join network namespace ", netns_path));
      return;
    }
    out = fn();
  });
  t.join();
  return out;
}

absl::Status SetGro(const std::string& ifname, bool on) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ)
    return absl::InvalidArgumentError(absl::StrCat("device name '", ifname, "' is not a valid name"));
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return ErrnoError(errno, "open a socket for ethtool");
  ethtool_value v{};
  v.cmd = ETHTOOL_SGRO;
  v.data = on ? 1 : 0;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.data(), ifname.size());
  ifr.ifr_data = reinterpret_cast<char*>(&v);
  if (::ioctl(s.get(), SIOCETHTOOL, &ifr) != 0)
    return ErrnoError(errno, absl::StrCat("turn GRO ", on ? "on" : "off", " on ", ifname));
  return absl::OkStatus();
}

}  // namespace tendril
