// rtnetlink plumbing shared by the network/ files: a libmnl socket, one
// request and its answers, attribute iteration.
#pragma once

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status.h"

namespace tendril {

struct MnlCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlCloser>;

inline absl::StatusOr<MnlSocket> OpenRoute() {
  MnlSocket nl(mnl_socket_open(NETLINK_ROUTE));
  if (!nl) return ErrnoError(errno, "open rtnetlink socket");
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) return ErrnoError(errno, "bind rtnetlink socket");
  return nl;
}

// A request header at the start of `buf` (NLM_F_REQUEST and `flags`).
inline nlmsghdr* Header(std::vector<char>& buf, uint16_t type, uint16_t flags, uint32_t seq) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = seq;
  return nlh;
}

// Sends `nlh` and runs `cb` over every answer until the kernel is done.
inline absl::Status Transact(mnl_socket* nl, nlmsghdr* nlh, mnl_cb_t cb, void* data, const std::string& what,
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

}  // namespace tendril
