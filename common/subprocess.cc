#include "common/subprocess.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/status.h"

extern char** environ;

namespace tendril {

namespace {

absl::StatusOr<UniqueFd> TempFd() {
  char tmpl[] = "/tmp/tendril-cmd-XXXXXX";
  UniqueFd fd(::mkstemp(tmpl));
  if (!fd.valid()) return ErrnoError(errno, "create temp file for command output");
  ::unlink(tmpl);
  return fd;
}

std::string Slurp(int fd) {
  std::string s;
  ::lseek(fd, 0, SEEK_SET);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

}  // namespace

absl::StatusOr<int> RunCommandSplit(const std::vector<std::string>& argv, std::string* out,
                                    std::string* err) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  TND_ASSIGN_OR_RETURN(UniqueFd out_fd, TempFd());
  TND_ASSIGN_OR_RETURN(UniqueFd err_fd, TempFd());
  int err_target = err ? err_fd.get() : out_fd.get();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_fd.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, err_target, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return ErrnoError(rc, absl::StrCat("run ", argv[0]));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError(errno, absl::StrCat("wait for ", argv[0]));
  }
  if (out) *out = Slurp(out_fd.get());
  if (err) *err = Slurp(err_fd.get());
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

absl::StatusOr<int> RunCommand(const std::vector<std::string>& argv, std::string* output) {
  return RunCommandSplit(argv, output, nullptr);
}

}  // namespace tendril
