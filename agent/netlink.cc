#include "agent/netlink.h"

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tendril {
namespace {

struct MnlCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlCloser>;

absl::StatusOr<MnlSocket> OpenRoute() {
  MnlSocket nl(mnl_socket_open(NETLINK_ROUTE));
  if (!nl) return ErrnoError(errno, "open rtnetlink socket");
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) return ErrnoError(errno, "bind rtnetlink socket");
  return nl;
}

// Sends `nlh` and runs `cb` over every answer until the kernel is done.
absl::Status Transact(mnl_socket* nl, nlmsghdr* nlh, mnl_cb_t cb, void* data, const std::string& what,
                      int* err = nullptr) {
  uint32_t seq = nlh->nlmsg_seq;
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return ErrnoError(errno, what);
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  uint32_t portid = mnl_socket_get_portid(nl);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (n < 0) return ErrnoError(errno, what);
    int r = mnl_cb_run(buf.data(), static_cast<size_t>(n), seq, portid, cb, data);
    if (r < 0) {
      if (err) *err = errno;
      return ErrnoError(errno, what);
    }
    if (r == MNL_CB_STOP) return absl::OkStatus();
  }
}

// mnl_attr_for_each, written for C++ (the macro converts from void*).
template <typename Fn>
void ForEachAttr(const nlmsghdr* nlh, size_t offset, Fn fn) {
  const auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, offset));
  const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  while (mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a)))) {
    fn(a);
    a = mnl_attr_next(a);
  }
}

int RouteCb(const nlmsghdr* nlh, void* data) {
  auto* out = static_cast<std::optional<RouteInfo>*>(data);
  const auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
  RouteInfo r;
  r.local_address = rtm->rtm_type == RTN_LOCAL;
  ForEachAttr(nlh, sizeof(rtmsg), [&](const nlattr* a) {
    if (mnl_attr_get_type(a) == RTA_OIF && mnl_attr_validate(a, MNL_TYPE_U32) >= 0)
      r.oif = static_cast<int>(mnl_attr_get_u32(a));
  });
  *out = r;
  return MNL_CB_STOP;
}

struct AddrQuery {
  int ifindex;
  std::vector<IpAddr> out;
};

int AddrCb(const nlmsghdr* nlh, void* data) {
  auto* q = static_cast<AddrQuery*>(data);
  const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
  if (static_cast<int>(ifa->ifa_index) != q->ifindex || ifa->ifa_scope != RT_SCOPE_UNIVERSE) return MNL_CB_OK;
  ForEachAttr(nlh, sizeof(ifaddrmsg), [&](const nlattr* a) {
    if (mnl_attr_get_type(a) != IFA_ADDRESS) return;
    IpAddr ip;
    size_t len = mnl_attr_get_payload_len(a);
    if (ifa->ifa_family == AF_INET && len == 4) {
      ip.family = Family::kV4;
    } else if (ifa->ifa_family == AF_INET6 && len == 16) {
      ip.family = Family::kV6;
    } else {
      return;
    }
    std::memcpy(ip.bytes.data(), mnl_attr_get_payload(a), len);
    q->out.push_back(ip);
  });
  return MNL_CB_OK;
}

}  // namespace

absl::StatusOr<std::optional<RouteInfo>> LookupRoute(const IpAddr& dst) {
  TND_ASSIGN_OR_RETURN(MnlSocket nl, OpenRoute());
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_GETROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = 1;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  bool v4 = dst.family == Family::kV4;
  rtm->rtm_family = v4 ? AF_INET : AF_INET6;
  rtm->rtm_dst_len = v4 ? 32 : 128;
  mnl_attr_put(nlh, RTA_DST, v4 ? 4 : 16, dst.bytes.data());
  std::optional<RouteInfo> route;
  int err = 0;
  auto st = Transact(nl.get(), nlh, RouteCb, &route, absl::StrCat("route lookup for ", dst.ToString()), &err);
  // No route is an answer, not an error.
  if (!st.ok() && (err == ENETUNREACH || err == EHOSTUNREACH)) return std::optional<RouteInfo>{};
  if (!st.ok()) return st;
  return route;
}

absl::StatusOr<std::vector<IpAddr>> DeviceAddresses(int ifindex) {
  TND_ASSIGN_OR_RETURN(MnlSocket nl, OpenRoute());
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_GETADDR;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = 2;
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_UNSPEC;
  AddrQuery q{ifindex, {}};
  TND_RETURN_IF_ERROR(Transact(nl.get(), nlh, AddrCb, &q, absl::StrCat("list addresses of ifindex ", ifindex)));
  return q.out;
}

}  // namespace tendril
