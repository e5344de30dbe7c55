#include "network/route_table.h"

#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "network/netlink_socket.h"

namespace tendril {
namespace {

constexpr uint32_t kNoSuppress = 0xffffffff;

std::array<uint8_t, 16> Masked(const uint8_t* bytes, size_t size, int len) {
  std::array<uint8_t, 16> out{};
  std::memcpy(out.data(), bytes, std::min<size_t>(size, 16));
  for (int bit = len; bit < static_cast<int>(size) * 8; ++bit) out[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
  return out;
}

struct RuleDump {
  std::vector<std::pair<uint32_t, uint32_t>> rules;  // priority, table
  bool plain = true;
};

// A rule is plain when all it does is "look up table T" for every packet.
int RuleCb(const nlmsghdr* nlh, void* data) {
  auto* q = static_cast<RuleDump*>(data);
  const auto* h = static_cast<const fib_rule_hdr*>(mnl_nlmsg_get_payload(nlh));
  if (h->action != FR_ACT_TO_TBL || h->dst_len || h->src_len || h->tos || h->flags) q->plain = false;
  uint32_t prio = 0, table = h->table;
  ForEachAttr(nlh, sizeof(fib_rule_hdr), [&](const nlattr* a) {
    const bool u32 = mnl_attr_validate(a, MNL_TYPE_U32) >= 0;
    switch (mnl_attr_get_type(a)) {
      case FRA_PRIORITY: prio = u32 ? mnl_attr_get_u32(a) : prio; break;
      case FRA_TABLE: table = u32 ? mnl_attr_get_u32(a) : table; break;
      case FRA_PROTOCOL: break;  // who added it
      case FRA_SUPPRESS_PREFIXLEN:
      case FRA_SUPPRESS_IFGROUP:
        if (!u32 || mnl_attr_get_u32(a) != kNoSuppress) q->plain = false;
        break;
      default: q->plain = false;
    }
  });
  q->rules.emplace_back(prio, table);
  return MNL_CB_OK;
}

struct RouteDump {
  int family = AF_INET;
  std::vector<RouteTable::Table>* tables = nullptr;
  bool per_destination = true;  // no route looked at picks by more than its destination
};

int RouteDumpCb(const nlmsghdr* nlh, void* data) {
  auto* q = static_cast<RouteDump*>(data);
  const auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
  if (rtm->rtm_family != q->family || (rtm->rtm_flags & RTM_F_CLONED)) return MNL_CB_OK;
  uint32_t table = rtm->rtm_table, metric = 0;
  int oif = 0;
  bool several = false;
  uint8_t dst[16] = {};
  ForEachAttr(nlh, sizeof(rtmsg), [&](const nlattr* a) {
    const uint16_t type = mnl_attr_get_type(a);
    const bool u32 = mnl_attr_validate(a, MNL_TYPE_U32) >= 0;
    if (type == RTA_TABLE && u32) table = mnl_attr_get_u32(a);
    if (type == RTA_OIF && u32) oif = static_cast<int>(mnl_attr_get_u32(a));
    if (type == RTA_PRIORITY && u32) metric = mnl_attr_get_u32(a);
    if (type == RTA_MULTIPATH || type == RTA_NH_ID) several = true;
    if (type == RTA_DST && mnl_attr_get_payload_len(a) <= sizeof(dst))
      std::memcpy(dst, mnl_attr_get_payload(a), mnl_attr_get_payload_len(a));
  });
  auto t = std::find_if(q->tables->begin(), q->tables->end(), [&](const auto& x) { return x.id == table; });
  if (t == q->tables->end()) return MNL_CB_OK;  // no rule looks there
  // Several next hops (hashed by flow), a nexthop object (maybe a group), a
  // source-specific or TOS route: the answer depends on more than dst.
  if (several || rtm->rtm_src_len || rtm->rtm_tos) q->per_destination = false;
  RouteTable::Entry e;
  e.metric = metric;
  e.route.local_address = rtm->rtm_type == RTN_LOCAL;
  e.route.oif = e.route.local_address ? 1 : oif;  // the kernel answers "dev lo" for the node's addresses
  e.modeled = (rtm->rtm_type == RTN_UNICAST || rtm->rtm_type == RTN_LOCAL) && !several && rtm->rtm_src_len == 0 &&
              rtm->rtm_tos == 0 && !(rtm->rtm_flags & (RTNH_F_DEAD | RTNH_F_LINKDOWN)) &&
              (e.route.local_address || oif != 0);
  const size_t size = q->family == AF_INET ? 4 : 16;
  t->Add(rtm->rtm_dst_len, Masked(dst, size, rtm->rtm_dst_len), e);
  return MNL_CB_OK;
}

absl::Status Dump(mnl_socket* nl, uint16_t type, int family, mnl_cb_t cb, void* data, const std::string& what) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = Header(buf, type, NLM_F_DUMP, 1);
  // rtmsg and fib_rule_hdr both start with the family.
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<uint8_t>(family);
  return Transact(nl, nlh, cb, data, what);
}

}  // namespace

void RouteTable::Table::Add(int len, const std::array<uint8_t, 16>& prefix, const Entry& e) {
  auto it = std::find_if(by_len.begin(), by_len.end(), [&](const auto& b) { return b.first <= len; });
  if (it == by_len.end() || it->first != len) it = by_len.insert(it, {len, {}});
  auto [at, fresh] = it->second.emplace(prefix, e);
  if (fresh) return;
  if (e.metric < at->second.metric) at->second = e;
  else if (e.metric == at->second.metric) at->second.modeled = false;  // equal-cost siblings: the kernel picks
}

absl::StatusOr<std::optional<RouteTable>> RouteTable::Load() {
  TND_ASSIGN_OR_RETURN(MnlSocket nl, OpenRoute());
  RouteTable rt;
  for (int f = 0; f < 2; ++f) {
    const int family = f == 0 ? AF_INET : AF_INET6;
    RuleDump rules;
    TND_RETURN_IF_ERROR(Dump(nl.get(), RTM_GETRULE, family, RuleCb, &rules, "dump routing rules"));
    if (!rules.plain) return std::optional<RouteTable>();
    std::stable_sort(rules.rules.begin(), rules.rules.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [prio, table] : rules.rules) {
      Table t;
      t.id = table;
      rt.tables_[f].push_back(std::move(t));
    }
    RouteDump routes{family, &rt.tables_[f]};
    TND_RETURN_IF_ERROR(Dump(nl.get(), RTM_GETROUTE, family, RouteDumpCb, &routes, "dump routes"));
    rt.per_destination_ = rt.per_destination_ && routes.per_destination;
  }
  return std::optional<RouteTable>(std::move(rt));
}

RouteTable::Answer RouteTable::Lookup(const IpAddr& dst, RouteInfo* out) const {
  const bool v4 = dst.family == Family::kV4;
  for (const Table& t : tables_[v4 ? 0 : 1])
    for (const auto& [len, prefixes] : t.by_len) {
      auto it = prefixes.find(Masked(dst.bytes.data(), v4 ? 4 : 16, len));
      if (it == prefixes.end()) continue;
      if (!it->second.modeled) return Answer::kAskKernel;
      *out = it->second.route;
      return Answer::kRoute;
    }
  return Answer::kNoRoute;
}

}  // namespace tendril
