// `tendril monitor`: drop and trace events from the ring buffer, live.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <csignal>
#include <cstdio>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cli.h"
#include "cli/format.h"
#include "common/api_client.h"
#include "cli/monitor_event.h"
#include "common/fd.h"
#include "common/status.h"
#include "maps/abi.h"

namespace tendril::cli {
namespace {

using nlohmann::json;

struct MonitorArgs {
  std::string type;       // "", "drop", "trace"
  int64_t from_endpoint = 0;
  int64_t max_events = 0;  // 0: until interrupted
  double timeout = 0;      // seconds, 0: until interrupted
};

volatile sig_atomic_t g_stop = 0;

struct MonitorState {
  const Globals* g;
  const MonitorArgs* a;
  int64_t shown = 0;
  int64_t mono_to_real_ns = 0;
  int64_t start_mono_ns = 0;
};

int OnEvent(void* ctx, void* data, size_t size) {
  auto* st = static_cast<MonitorState*>(ctx);
  absl::StatusOr<tnd_event> ev = EventFromBytes(data, size);
  if (!ev.ok()) return 0;
  const tnd_event& e = *ev;
  const MonitorArgs& a = *st->a;
  if (static_cast<int64_t>(e.ts_ns) < st->start_mono_ns) return 0;  // left in the ring from before
  if (a.type == "drop" && e.type != TND_EVENT_DROP) return 0;
  if (a.type == "trace" && e.type != TND_EVENT_TRACE) return 0;
  if (a.from_endpoint && e.src_ep != static_cast<uint32_t>(a.from_endpoint)) return 0;
  json j = DecodeEvent(e, st->mono_to_real_ns);
  if (st->g->json())
    std::printf("%s\n", j.dump().c_str());
  else
    std::printf("%s\n", EventLine(j).c_str());
  std::fflush(stdout);
  ++st->shown;
  if (a.max_events && st->shown >= a.max_events) g_stop = 1;
  return 0;
}

int CmdMonitor(const Globals& g, const MonitorArgs& a) {
  if (a.from_endpoint < 0 || a.from_endpoint > 65535)
    return Fail(absl::InvalidArgumentError("--from-endpoint must be an endpoint id in 1-65535"));
  std::string path = g.pins().Map(TND_MAP_EVENTS);
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return Fail(ErrnoError(errno, absl::StrCat("open event ring buffer ", path, " (is the agent running?)")));
  UniqueFd owned(fd);
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  MonitorState st{&g, &a, 0,
                  (static_cast<int64_t>(real.tv_sec) - mono.tv_sec) * 1000000000LL + (real.tv_nsec - mono.tv_nsec),
                  static_cast<int64_t>(mono.tv_sec) * 1000000000LL + mono.tv_nsec};
  ring_buffer* rb = ring_buffer__new(fd, OnEvent, &st, nullptr);
  if (!rb) return Fail(ErrnoError(errno, absl::StrCat("read event ring buffer ", path)));
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (!g.json())
    std::fprintf(stderr, "Listening for %s events%s... (Ctrl-C to stop)\n",
                 a.type.empty() ? "drop and trace" : a.type.c_str(),
                 a.from_endpoint ? absl::StrCat(" from endpoint ", a.from_endpoint).c_str() : "");
  timespec start{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  int rc = 0;
  while (!g_stop) {
    int n = ring_buffer__poll(rb, 100);
    if (n < 0 && n != -EINTR) {
      rc = Fail(ErrnoError(-n, "poll event ring buffer"));
      break;
    }
    if (a.timeout > 0) {
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      if ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 >= a.timeout) break;
    }
  }
  ring_buffer__free(rb);
  if (rc == 0 && a.max_events && st.shown < a.max_events) rc = 1;  // bounded wait ran out
  return rc;
}


}  // namespace

void AddMonitorCommand(CLI::App& app, Cli& c) {
  auto ma = std::make_shared<MonitorArgs>();
  auto* mon = app.add_subcommand("monitor", "live drop and trace events from the datapath, one line each");
  mon->add_option("--type", ma->type, "only drop or trace events")->check(CLI::IsMember({"drop", "trace"}));
  mon->add_option("--from-endpoint", ma->from_endpoint, "only events of packets from this endpoint id");
  mon->add_option("--max", ma->max_events, "stop after this many events (exit 1 if the timeout comes first)");
  mon->add_option("--timeout", ma->timeout, "stop after this many seconds");
  mon->callback([&c, ma] { c.rc = CmdMonitor(c.g, *ma); });
}

}  // namespace tendril::cli
