#include "network/netlink.h"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fd.h"
#include "common/status.h"
#include "network/netlink_socket.h"
#include "network/netns.h"
#include "network/route_table.h"

namespace tendril {
namespace {

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

namespace {
// One RTM_GETROUTE request for `dst` at the end of `buf`.
void PutRouteRequest(std::vector<char>& buf, const IpAddr& dst, uint32_t seq) {
  const size_t at = buf.size();
  buf.resize(at + MNL_ALIGN(sizeof(nlmsghdr)) + MNL_ALIGN(sizeof(rtmsg)) + MNL_ALIGN(sizeof(nlattr)) + 16);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data() + at);
  nlh->nlmsg_type = RTM_GETROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = seq;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  const bool v4 = dst.family == Family::kV4;
  rtm->rtm_family = v4 ? AF_INET : AF_INET6;
  rtm->rtm_dst_len = v4 ? 32 : 128;
  mnl_attr_put(nlh, RTA_DST, v4 ? 4 : 16, dst.bytes.data());
  buf.resize(at + nlh->nlmsg_len);
}

// Sends requests seq first..first+n-1 (in `buf`) and fills out[seq - base].
absl::Status RouteBatch(mnl_socket* nl, const std::vector<char>& req, uint32_t first, size_t n, uint32_t base,
                        std::vector<std::optional<RouteInfo>>& out) {
  if (mnl_socket_sendto(nl, req.data(), req.size()) < 0) return ErrnoError(errno, "route lookups");
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  for (size_t answered = 0; answered < n;) {
    const ssize_t got = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (got < 0) return ErrnoError(errno, "route lookups");
    int len = static_cast<int>(got);
    for (const auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_seq < first || nlh->nlmsg_seq >= first + n) continue;  // not ours
      std::optional<RouteInfo>& slot = out[nlh->nlmsg_seq - base];
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (e->error != 0 && -e->error != ENETUNREACH && -e->error != EHOSTUNREACH)
          return ErrnoError(-e->error, "route lookup");
        slot.reset();  // no route is an answer
        ++answered;
      } else if (nlh->nlmsg_type == RTM_NEWROUTE) {
        RouteCb(nlh, &slot);
        ++answered;
      }
    }
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::vector<std::optional<RouteInfo>>> LookupRoutes(const std::vector<IpAddr>& dsts) {
  constexpr size_t kBatch = 128;
  // Many addresses: answered from one dump of the rules and routes where it
  // can (network/route_table.h); the kernel answers the rest.
  constexpr size_t kTableFrom = 64;
  std::vector<std::optional<RouteInfo>> out(dsts.size());
  std::vector<IpAddr> ask;
  std::vector<size_t> ask_at;
  std::optional<RouteTable> table;
  if (dsts.size() >= kTableFrom) {
    TND_ASSIGN_OR_RETURN(table, RouteTable::Load());
  }
  for (size_t i = 0; i < dsts.size(); ++i) {
    RouteInfo r;
    const auto answer = table ? table->Lookup(dsts[i], &r) : RouteTable::Answer::kAskKernel;
    if (answer == RouteTable::Answer::kRoute) out[i] = r;
    if (answer != RouteTable::Answer::kAskKernel) continue;
    ask.push_back(dsts[i]);
    ask_at.push_back(i);
  }
  if (ask.empty()) return out;
  TND_ASSIGN_OR_RETURN(MnlSocket nl, OpenRoute());
  std::vector<std::optional<RouteInfo>> asked(ask.size());
  std::vector<char> req;
  for (size_t i = 0; i < ask.size(); i += kBatch) {
    const size_t n = std::min(kBatch, ask.size() - i);
    req.clear();
    for (size_t k = 0; k < n; ++k) PutRouteRequest(req, ask[i + k], static_cast<uint32_t>(1 + i + k));
    TND_RETURN_IF_ERROR(RouteBatch(nl.get(), req, static_cast<uint32_t>(1 + i), n, 1, asked));
  }
  for (size_t k = 0; k < ask.size(); ++k) out[ask_at[k]] = asked[k];
  return out;
}

absl::StatusOr<std::optional<RouteInfo>> LookupRoute(const IpAddr& dst) {
  // One socket per thread, kept: a service sync looks up every backend
  // (20000 lookups for 10000 services), and opening a socket for each was
  // most of its time. A thread keeps its network namespace, so the socket
  // stays in the right one.
  thread_local MnlSocket cached;
  thread_local uint32_t seq = 0;
  if (!cached) {
    TND_ASSIGN_OR_RETURN(cached, OpenRoute());
  }
  mnl_socket* nl = cached.get();
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = Header(buf, RTM_GETROUTE, 0, ++seq);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  bool v4 = dst.family == Family::kV4;
  rtm->rtm_family = v4 ? AF_INET : AF_INET6;
  rtm->rtm_dst_len = v4 ? 32 : 128;
  mnl_attr_put(nlh, RTA_DST, v4 ? 4 : 16, dst.bytes.data());
  std::optional<RouteInfo> route;
  int err = 0;
  auto st = Transact(nl, nlh, RouteCb, &route, absl::StrCat("route lookup for ", dst.ToString()), &err);
  // No route is an answer, not an error.
  if (!st.ok() && (err == ENETUNREACH || err == EHOSTUNREACH)) return std::optional<RouteInfo>{};
  if (!st.ok()) {
    cached.reset();  // whatever went wrong, the next lookup starts clean
    return st;
  }
  return route;
}

absl::StatusOr<std::vector<IpAddr>> DeviceAddresses(int ifindex) {
  TND_ASSIGN_OR_RETURN(MnlSocket nl, OpenRoute());
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = Header(buf, RTM_GETADDR, NLM_F_DUMP, 2);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_UNSPEC;
  AddrQuery q{ifindex, {}};
  TND_RETURN_IF_ERROR(Transact(nl.get(), nlh, AddrCb, &q, absl::StrCat("list addresses of ifindex ", ifindex)));
  return q.out;
}

}  // namespace tendril

// ---- links, addresses, routes, neighbours ---------------------------------

namespace tendril {
namespace {

int LinkCb(const nlmsghdr* nlh, void* data) {
  auto* out = static_cast<std::optional<LinkInfo>*>(data);
  if (nlh->nlmsg_type != RTM_NEWLINK) return MNL_CB_OK;
  const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  LinkInfo l;
  l.ifindex = ifi->ifi_index;
  l.up = (ifi->ifi_flags & IFF_UP) != 0;
  ForEachAttr(nlh, sizeof(ifinfomsg), [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case IFLA_IFNAME:
        if (mnl_attr_validate(a, MNL_TYPE_STRING) >= 0) l.name = mnl_attr_get_str(a);
        break;
      case IFLA_ADDRESS:
        if (mnl_attr_get_payload_len(a) == 6) std::memcpy(l.mac.data(), mnl_attr_get_payload(a), 6);
        break;
      case IFLA_LINK:
        if (mnl_attr_validate(a, MNL_TYPE_U32) >= 0) l.peer_ifindex = static_cast<int>(mnl_attr_get_u32(a));
        break;
      case IFLA_MTU:
        if (mnl_attr_validate(a, MNL_TYPE_U32) >= 0) l.mtu = mnl_attr_get_u32(a);
        break;
      case IFLA_LINK_NETNSID:
        if (mnl_attr_validate(a, MNL_TYPE_U32) >= 0) l.link_netnsid = static_cast<int>(mnl_attr_get_u32(a));
        break;
      case IFLA_LINKINFO: {
        const auto* n = static_cast<const nlattr*>(mnl_attr_get_payload(a));
        int left = static_cast<int>(mnl_attr_get_payload_len(a));
        while (mnl_attr_ok(n, left)) {
          if (mnl_attr_get_type(n) == IFLA_INFO_KIND && mnl_attr_validate(n, MNL_TYPE_STRING) >= 0)
            l.kind = mnl_attr_get_str(n);
          left -= static_cast<int>(MNL_ALIGN(n->nla_len));
          n = mnl_attr_next(n);
        }
        break;
      }
      default:
        break;
    }
  });
  *out = l;
  return MNL_CB_STOP;  // a single answer (no NLMSG_DONE follows)
}


}  // namespace

absl::StatusOr<Rtnl> Rtnl::Open() {
  TND_ASSIGN_OR_RETURN(MnlSocket nl, OpenRoute());
  return Rtnl(nl.release());
}

absl::StatusOr<Rtnl> Rtnl::OpenIn(const std::string& netns_path) {
  absl::StatusOr<Rtnl> out = absl::InternalError("netlink thread did not run");
  TND_RETURN_IF_ERROR(InNetns(netns_path, [&] {
    out = Open();
    return absl::OkStatus();
  }));
  return out;
}

Rtnl::Rtnl(Rtnl&& o) noexcept : nl_(o.nl_), seq_(o.seq_) { o.nl_ = nullptr; }
Rtnl& Rtnl::operator=(Rtnl&& o) noexcept {
  if (this != &o) {
    if (nl_) mnl_socket_close(nl_);
    nl_ = o.nl_;
    seq_ = o.seq_;
    o.nl_ = nullptr;
  }
  return *this;
}
Rtnl::~Rtnl() {
  if (nl_) mnl_socket_close(nl_);
}

absl::Status Rtnl::Ack(nlmsghdr* nlh, const std::string& what) {
  return Transact(nl_, nlh, nullptr, nullptr, what);
}

absl::StatusOr<std::optional<LinkInfo>> Rtnl::GetLink(const std::string& name) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = Header(buf, RTM_GETLINK, 0, ++seq_);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  std::optional<LinkInfo> out;
  int err = 0;
  auto st = Transact(nl_, nlh, LinkCb, &out, absl::StrCat("look up device ", name), &err);
  if (!st.ok() && err == ENODEV) return std::optional<LinkInfo>{};
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<std::optional<LinkInfo>> Rtnl::GetLinkByIndex(int ifindex, int target_netnsid) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = Header(buf, RTM_GETLINK, 0, ++seq_);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  if (target_netnsid >= 0) mnl_attr_put_u32(nlh, IFLA_TARGET_NETNSID, static_cast<uint32_t>(target_netnsid));
  std::optional<LinkInfo> out;
  int err = 0;
  auto st = Transact(nl_, nlh, LinkCb, &out,
                     absl::StrCat("look up device ", ifindex,
                                  target_netnsid >= 0 ? absl::StrCat(" in netns id ", target_netnsid) : ""),
                     &err);
  if (!st.ok() && err == ENODEV) return std::optional<LinkInfo>{};
  if (!st.ok()) return st;
  return out;
}

absl::Status Rtnl::CreateVeth(const std::string& name, const std::string& peer_name, int peer_netns_fd) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = Header(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, ++seq_);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  nlattr* linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
  nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  nlattr* peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
  auto* pifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  pifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, peer_name.c_str());
  mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
  mnl_attr_nest_end(nlh, peer);
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, linkinfo);
  return Ack(nlh, absl::StrCat("create veth pair ", name, " / ", peer_name));
}

absl::Status Rtnl::SetUp(int ifindex, const std::string& what) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = Header(buf, RTM_NEWLINK, NLM_F_ACK, ++seq_);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  return Ack(nlh, absl::StrCat("set ", what, " up"));
}

absl::Status Rtnl::AddAddress(int ifindex, const IpAddr& addr, int prefix_len, const std::string& what) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = Header(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK, ++seq_);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  bool v4 = addr.family == Family::kV4;
  ifa->ifa_family = v4 ? AF_INET : AF_INET6;
  ifa->ifa_prefixlen = static_cast<uint8_t>(prefix_len);
  ifa->ifa_index = static_cast<uint32_t>(ifindex);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  if (!v4) ifa->ifa_flags = IFA_F_NODAD;
  mnl_attr_put(nlh, IFA_LOCAL, v4 ? 4 : 16, addr.bytes.data());
  mnl_attr_put(nlh, IFA_ADDRESS, v4 ? 4 : 16, addr.bytes.data());
  return Ack(nlh, absl::StrCat("add address ", addr.ToString(), "/", prefix_len, " to ", what));
}

absl::Status Rtnl::AddRoute(const IpAddr& dst, int prefix_len, int ifindex, const IpAddr* gateway,
                            const std::string& what) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = Header(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK, ++seq_);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  bool v4 = dst.family == Family::kV4;
  rtm->rtm_family = v4 ? AF_INET : AF_INET6;
  rtm->rtm_dst_len = static_cast<uint8_t>(prefix_len);
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_type = RTN_UNICAST;
  rtm->rtm_scope = gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  if (gateway) rtm->rtm_flags = RTNH_F_ONLINK;
  if (prefix_len > 0) mnl_attr_put(nlh, RTA_DST, v4 ? 4 : 16, dst.bytes.data());
  mnl_attr_put_u32(nlh, RTA_OIF, static_cast<uint32_t>(ifindex));
  if (gateway) mnl_attr_put(nlh, RTA_GATEWAY, v4 ? 4 : 16, gateway->bytes.data());
  return Ack(nlh, absl::StrCat("add route ", dst.ToString(), "/", prefix_len,
                               gateway ? absl::StrCat(" via ", gateway->ToString()) : "", " dev ", what));
}

absl::Status Rtnl::AddNeighbour(int ifindex, const IpAddr& addr, const std::array<uint8_t, 6>& mac,
                                const std::string& what) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = Header(buf, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK, ++seq_);
  auto* nd = static_cast<ndmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ndmsg)));
  bool v4 = addr.family == Family::kV4;
  nd->ndm_family = v4 ? AF_INET : AF_INET6;
  nd->ndm_ifindex = ifindex;
  nd->ndm_state = NUD_PERMANENT;
  mnl_attr_put(nlh, NDA_DST, v4 ? 4 : 16, addr.bytes.data());
  mnl_attr_put(nlh, NDA_LLADDR, 6, mac.data());
  return Ack(nlh, absl::StrCat("add neighbour ", addr.ToString(), " lladdr ", MacToString(mac), " on ", what));
}

absl::Status Rtnl::DeleteLink(int ifindex, const std::string& what) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = Header(buf, RTM_DELLINK, NLM_F_ACK, ++seq_);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  return Ack(nlh, absl::StrCat("delete device ", what));
}

namespace {
std::optional<LinkEvent> DecodeEvent(const nlmsghdr* nlh) {
  LinkEvent e;
  const uint16_t t = nlh->nlmsg_type;
  if (t == RTM_NEWLINK || t == RTM_DELLINK) {
    const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    e.deleted = t == RTM_DELLINK;
    e.ifindex = ifi->ifi_index;
    ForEachAttr(nlh, sizeof(ifinfomsg), [&](const nlattr* a) {
      if (mnl_attr_get_type(a) == IFLA_IFNAME && mnl_attr_validate(a, MNL_TYPE_STRING) >= 0)
        e.name = mnl_attr_get_str(a);
    });
    return e;
  }
  if (t == RTM_NEWADDR || t == RTM_DELADDR) {
    const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
    e.kind = LinkEvent::Kind::kAddress;
    e.deleted = t == RTM_DELADDR;
    e.ifindex = static_cast<int>(ifa->ifa_index);
    return e;
  }
  if (t == RTM_NEWROUTE || t == RTM_DELROUTE) {
    const auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
    if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) return std::nullopt;
    e.kind = LinkEvent::Kind::kRoute;
    e.deleted = t == RTM_DELROUTE;
    e.route.family = rtm->rtm_family == AF_INET ? Family::kV4 : Family::kV6;
    e.route.prefix_len = rtm->rtm_dst_len;
    ForEachAttr(nlh, sizeof(rtmsg), [&](const nlattr* a) {
      if (mnl_attr_get_type(a) != RTA_DST) return;
      size_t n = std::min<size_t>(mnl_attr_get_payload_len(a), 16);
      std::memcpy(e.route.addr.data(), mnl_attr_get_payload(a), n);
    });
    return e;
  }
  if (t == RTM_NEWNEIGH || t == RTM_DELNEIGH) {
    e.kind = LinkEvent::Kind::kNeighbour;
    e.deleted = t == RTM_DELNEIGH;
    return e;
  }
  if (t == RTM_NEWRULE || t == RTM_DELRULE) {
    e.kind = LinkEvent::Kind::kRule;
    e.deleted = t == RTM_DELRULE;
    return e;
  }
  return std::nullopt;
}
}  // namespace

absl::StatusOr<std::unique_ptr<LinkWatcher>> LinkWatcher::Open() {
  mnl_socket* nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (!nl) return ErrnoError(errno, "open rtnetlink socket for link events");
  // Rules have no RTMGRP_* name; their groups' bits are (1 << (group - 1)).
  const unsigned groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE |
                          RTMGRP_IPV6_ROUTE | RTMGRP_NEIGH | (1u << (RTNLGRP_IPV4_RULE - 1)) |
                          (1u << (RTNLGRP_IPV6_RULE - 1));
  if (mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0) {
    int e = errno;
    mnl_socket_close(nl);
    return ErrnoError(e, "subscribe to link, address, route, neighbour and rule events (RTMGRP_*)");
  }
  return std::unique_ptr<LinkWatcher>(new LinkWatcher(nl));
}

LinkWatcher::~LinkWatcher() { mnl_socket_close(nl_); }
int LinkWatcher::fd() const { return mnl_socket_get_fd(nl_); }

std::vector<LinkEvent> LinkWatcher::Read() {
  std::vector<LinkEvent> out;
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_, buf.data(), buf.size());
    if (n <= 0) break;  // EAGAIN: drained (ENOBUFS: overrun; the agent resyncs on the next event)
    auto cb = [](const nlmsghdr* nlh, void* data) -> int {
      auto* events = static_cast<std::vector<LinkEvent>*>(data);
      if (auto e = DecodeEvent(nlh)) events->push_back(*e);
      return MNL_CB_OK;
    };
    mnl_cb_run(buf.data(), static_cast<size_t>(n), 0, 0, cb, &out);
  }
  return out;
}

}  // namespace tendril
