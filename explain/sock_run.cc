#include "explain/sock_run.h"

#include <bpf/bpf.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/status.h"

namespace tendril {
namespace {

// A child cgroup that is removed when this goes (its one process has exited).
class TempChildCgroup {
 public:
  static absl::StatusOr<TempChildCgroup> Make(const std::string& root) {
    std::string path = absl::StrCat(root, "/tendril-explain-", ::getpid());
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
      return ErrnoError(errno, absl::StrCat("create the throwaway cgroup ", path));
    return TempChildCgroup(path);
  }
  TempChildCgroup(TempChildCgroup&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  ~TempChildCgroup() {
    if (!path_.empty()) ::rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  explicit TempChildCgroup(std::string p) : path_(std::move(p)) {}
  std::string path_;
};

// In a child process: join `cgroup`, connect to p's destination; exits with
// the errno connect() gave (0: it connected, which a dry run never lets happen).
[[noreturn]] void ConnectChild(const std::string& cgroup, const PacketSpec& p) {
  int fd = ::open((cgroup + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0 || ::write(fd, "0", 1) != 1) ::_exit(200);
  ::close(fd);
  const bool v4 = p.family() == 4;
  int s = ::socket(v4 ? AF_INET : AF_INET6, (p.proto == IPPROTO_UDP ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (s < 0) ::_exit(201);
  sockaddr_storage ss{};
  socklen_t len;
  if (v4) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(p.dport);
    std::memcpy(&a->sin_addr, p.dst.bytes.data(), 4);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(p.dport);
    std::memcpy(&a->sin6_addr, p.dst.bytes.data(), 16);
    len = sizeof(*a);
  }
  int r = ::connect(s, reinterpret_cast<sockaddr*>(&ss), len);
  ::_exit(r == 0 ? 0 : (errno & 0x7f));
}

}  // namespace

absl::StatusOr<DryConnect> RunDryConnect(DryRunner& runner, const std::string& cgroup_root, const PacketSpec& p) {
  if (p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP)
    return absl::InvalidArgumentError("--hook sock: TCP or UDP (a connect)");
  if (cgroup_root.empty())
    return absl::FailedPreconditionError("the agent recorded no cgroup root (restart it with this version)");
  DryConnect out;
  out.program = p.family() == 4 ? "tnd_sock_connect4" : "tnd_sock_connect6";
  TND_ASSIGN_OR_RETURN(int prog, runner.ProgramFd("bpf_sock", out.program));
  TND_ASSIGN_OR_RETURN(TempChildCgroup cg, TempChildCgroup::Make(cgroup_root));
  UniqueFd cgfd(::open(cg.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgfd.valid()) return ErrnoError(errno, absl::StrCat("open ", cg.path()));
  UniqueFd link(bpf_link_create(prog, cgfd.get(),
                                p.family() == 4 ? BPF_CGROUP_INET4_CONNECT : BPF_CGROUP_INET6_CONNECT, nullptr));
  if (!link.valid()) return ErrnoError(errno, absl::StrCat("attach the dry-run connect program to ", cg.path()));
  TND_RETURN_IF_ERROR(runner.ClearRecord("bpf_sock"));
  pid_t child = ::fork();
  if (child < 0) return ErrnoError(errno, "fork the connecting process");
  if (child == 0) ConnectChild(cg.path(), p);
  int status = 0;
  if (::waitpid(child, &status, 0) != child) return ErrnoError(errno, "wait for the connecting process");
  if (!WIFEXITED(status) || WEXITSTATUS(status) >= 200)
    return absl::InternalError(absl::StrCat("the connecting process failed to set up (status ", status, ")"));
  out.connect_errno = WEXITSTATUS(status);
  TND_ASSIGN_OR_RETURN(out.rec, runner.Record("bpf_sock"));
  return out;
}

}  // namespace tendril
