// tendril-agent: see README.md and `tendril-agent --help`.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/api_server.h"
#include "agent/config.h"
#include "common/fd.h"
#include "common/log.h"
#include "common/status.h"

namespace tendril {
namespace {

absl::Status JoinNetns(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(errno, absl::StrCat("open network namespace ", path));
  if (::setns(fd.get(), CLONE_NEWNET) != 0)
    return ErrnoError(errno, absl::StrCat("join network namespace ", path));
  return absl::OkStatus();
}

// At 100,000 services the agent holds about 100 MB of small allocations;
// with 4 KiB pages a restart spent a quarter of its time in page faults
// (1.74 s -> 1.2-1.38 s to ready, measured with 2 MiB pages). glibc backs its
// heap with transparent huge pages when its glibc.malloc.hugetlb tunable
// says so, and reads tunables only at exec: the agent re-executes itself
// once with it set, unless the operator set it either way. Where THP is
// "never" this changes nothing; if the exec fails, it runs as it is.
void UseHugePageHeap(char** argv) {
  const char* cur = std::getenv("GLIBC_TUNABLES");
  if (cur && std::strstr(cur, "glibc.malloc.hugetlb")) return;
  const std::string v = cur && *cur ? absl::StrCat(cur, ":glibc.malloc.hugetlb=1") : "glibc.malloc.hugetlb=1";
  if (::setenv("GLIBC_TUNABLES", v.c_str(), 1) != 0) return;
  ::execv("/proc/self/exe", argv);
}

LogLevel ParseLevel(const std::string& s) {
  if (s == "debug") return LogLevel::kDebug;
  if (s == "warning") return LogLevel::kWarning;
  if (s == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

// The main loop: signals, the API and the agent's own descriptors and
// timers. False when polling failed; true on SIGTERM/SIGINT.
bool Serve(Agent& agent, ApiServer& api_server, int sfd) {
  ApiServer* api = &api_server;
  for (;;) {
    std::vector<pollfd> fds = {{sfd, POLLIN, 0}};
    std::vector<pollfd> api_fds = api->PollFds();
    fds.insert(fds.end(), api_fds.begin(), api_fds.end());
    size_t agent_first = fds.size();
    for (int fd : agent.PollFds()) fds.push_back({fd, POLLIN, 0});
    int timeout = agent.NextTimeoutMs();
    if (int t = api->NextTimeoutMs(); t >= 0 && (timeout < 0 || t < timeout)) timeout = t;
    int r = ::poll(fds.data(), fds.size(), timeout);
    if (r < 0) {
      if (errno == EINTR) continue;
      TND_LOG_ERROR("poll: ", std::strerror(errno));
      return false;
    }
    if (r == 0) {
      api->OnTimer();
      agent.OnTimer();
      continue;
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si{};
      if (::read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGPIPE) {
        TND_LOG_INFO("signal ", si.ssi_signo, ": shutting down");
        return true;
      }
    }
    api->OnPoll(fds.data() + 1, api_fds.size());
    for (size_t i = agent_first; i < fds.size(); ++i)
      if (fds[i].revents & POLLIN) agent.OnReadable(fds[i].fd);
    api->OnTimer();
    agent.OnTimer();
  }
}

int Run(int argc, char** argv) {
  auto parsed = ParseAgentArgs(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "tendril-agent: %s\n", std::string(parsed.status().message()).c_str());
    return 2;
  }
  if (parsed->exit_now) {
    std::fputs(parsed->message.c_str(), stdout);
    return parsed->exit_code;
  }
  AgentConfig cfg = parsed->config;
  SetLogLevel(ParseLevel(cfg.log_level));

  // Signals are read from a signalfd in the main loop; block them first so
  // that no thread takes them asynchronously.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGPIPE);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  UniqueFd sfd(::signalfd(-1, &mask, SFD_CLOEXEC));
  if (!sfd.valid()) {
    TND_LOG_ERROR("signalfd: ", std::strerror(errno));
    return 1;
  }

  if (!cfg.netns.empty()) {
    if (auto s = JoinNetns(cfg.netns); !s.ok()) {
      TND_LOG_ERROR(s.message());
      return 1;
    }
    TND_LOG_INFO("running in network namespace ", cfg.netns);
  }

  auto api = ApiServer::Listen(cfg.api_socket);
  if (!api.ok()) {
    TND_LOG_ERROR("API: ", api.status().message());
    return 1;
  }
  Agent agent(cfg);
  if (auto s = agent.Start(); !s.ok()) {
    TND_LOG_ERROR("start failed: ", s.message());
    sd_notifyf(0, "STATUS=start failed: %s", std::string(s.message()).c_str());
    return 1;
  }
  agent.RegisterApi(*api);
  TND_LOG_INFO("ready; API on ", cfg.api_socket);
  sd_notify(0, "READY=1\nSTATUS=datapath attached, serving API");

  if (!Serve(agent, *api, sfd.get())) return 1;
  sd_notify(0, "STOPPING=1");
  if (cfg.cleanup_on_exit) {
    if (auto s = agent.Cleanup(); !s.ok()) {
      TND_LOG_ERROR("cleanup: ", s.message());
      return 1;
    }
  } else {
    agent.OnStop();
    TND_LOG_INFO("leaving the datapath in place (programs attached, maps pinned under ",
                 cfg.bpffs_root, ")");
  }
  return 0;
}

}  // namespace
}  // namespace tendril

int main(int argc, char** argv) {
  tendril::UseHugePageHeap(argv);
  return tendril::Run(argc, argv);
}
