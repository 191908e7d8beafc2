// storm: the "1k+ ready sockets" benchmark (seed 002's problem) on raw epoll, three poll designs
// side by side, T worker threads over N connection pairs. See poll_designs.h for the designs and
// patterns and bench/README.md for the method and the fields.
//
// One invocation opens the N connections once and runs every (repeat, threads, design) of the
// given lists on them, each run with fresh epoll instances and threads, the designs in an order
// that rotates with the repeat so none always runs first. Each run prints one line (text, or CSV
// with --csv, then the text line goes to stderr as progress). Exit status: 0 ok, 1 a run failed
// (e.g. events lost), 2 bad flags, 3 skipped (the connections do not fit the fd limit).
//
//   storm --pattern burst --connections 1024 --threads 1,2,4 --duration 1
//   storm --pattern trickle --transport unix --design throttled --threads 8 --max_events 32
#include <linux/futex.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "bench/storm/connection_set.h"
#include "bench/storm/poll_designs.h"
#include "bench/storm/runtime_design.h"
#include "bench/storm/storm_run.h"
#include "examples/common/cli.h"
#include "gflags/gflags.h"

DEFINE_string(design, "sharded,global,throttled",
              "comma-separated poll designs: sharded, global, throttled (bare, raw epoll); "
              "rt-sharded, rt-global, rt-throttled, rt-adaptive (the runtime on epoll); "
              "rt-sharded-uring, rt-adaptive-uring (the runtime on io_uring); an rt-* name with "
              "+task (rt-adaptive+task) is driven by a task on the runtime's worker 0 instead of "
              "the storm's driver thread, as the Go peer's driver is a goroutine");
DEFINE_string(threads, "1,2,4", "comma-separated worker thread counts");
DEFINE_int32(connections, 1024, "connection pairs N (2N file descriptors)");
DEFINE_string(transport, "tcp", "tcp (127.0.0.1) or unix (socketpair)");
DEFINE_string(pattern, "burst", "burst, trickle or stay-ready");
DEFINE_double(duration, 1.0, "seconds per run");
DEFINE_double(warmup, 0,
              "burst and trickle: seconds of unmeasured rounds before each run's measured part, "
              "so that what a design adapts while it runs (spinning, streams following wakes) "
              "has settled");
DEFINE_int64(max_iterations, 100'000'000,
             "per-run bound besides --duration: burst rounds, trickle events, stay-ready events");
DEFINE_int32(max_events, 128,
             "epoll_wait capacity (throttled: events per poll, its fairness bound)");
DEFINE_string(arm, "oneshot",
              "global/throttled registration for burst and trickle: oneshot (EPOLLONESHOT, "
              "re-armed with EPOLL_CTL_MOD after each read) or edge (EPOLLET, as Go)");
DEFINE_int32(repeats, 1, "runs per (threads, design)");
DEFINE_bool(time_polls, true,
            "runtime designs: time every poll call for the poll figures (false: run untimed, as "
            "in production, and report no poll figures; the bare designs always time)");
DEFINE_bool(csv, false, "print CSV lines on stdout (text lines go to stderr as progress)");
DEFINE_bool(csv_header, false, "with --csv: print the header line first");

using namespace shardloop;
using namespace shardloop::bench::storm;

namespace {

bool wall_ok(double wall, const char* stop) {
  return std::string(stop) != "duration" ||
         std::fabs(wall - FLAGS_duration) <= 0.2 * FLAGS_duration;
}

double ratio(double a, double b) { return b > 0 ? a / b : 0; }

struct Derived {
  double events_per_s, cpu_s_per_mev, poll_ns_per_event, poll_cpu_ns_per_event, poll_cpu_share,
      events_per_poll, vcsw_per_1k, spurious_per_event, total_cpu_s_per_mev, total_vcsw_per_1k;
};

Derived derive(const RunResult& r) {
  const double ev = static_cast<double>(r.events);
  const double polled = static_cast<double>(r.sum.polled_events);
  return {ratio(ev, r.wall_s), ratio(r.cpu_s * 1e6, ev),
          ratio(static_cast<double>(r.sum.poll_wall_ns), polled),
          ratio(static_cast<double>(r.sum.poll_cpu_ns), polled),
          // Of the workers' CPU (the process less the driver): the runtime designs' workers are
          // the runtime's threads, not the storm's, so no per-thread figure covers both.
          ratio(static_cast<double>(r.sum.poll_cpu_ns), r.cpu_s * 1e9),
          ratio(polled, static_cast<double>(r.sum.polls)),
          ratio(static_cast<double>(r.vcsw) * 1000, ev),
          ratio(static_cast<double>(r.sum.spurious), ev), ratio(r.total_cpu_s * 1e6, ev),
          ratio(static_cast<double>(r.total_vcsw) * 1000, ev)};
}

const char* kCsvHeader =
    "impl,design,transport,pattern,connections,threads,max_events,arm,repeat,duration_s,wall_s,"
    "stop,wall_ok,rounds,events,events_per_s,cpu_s,cpu_s_per_Mevents,poll_ns_per_event,"
    "poll_cpu_ns_per_event,poll_cpu_share,events_per_poll,vcsw_per_1k_events,spurious_per_event,"
    "stale_events,idle_timeouts,total_cpu_s_per_Mevents,total_vcsw_per_1k_events";

void report(const RunResult& r, int n) {
  const Derived d = derive(r);
  const RunConfig& c = r.config;
  const char* arm = c.design == Design::kSharded || is_runtime_design(c.design) ||
                            c.pattern == Pattern::kStayReady
                        ? "level"
                        : arm_name(c.arm);
  const bool ok = wall_ok(r.wall_s, r.stop);
  char text[640];
  std::snprintf(text, sizeof text,
                "%-9s %-10s N=%-5d T=%-3d run %d: %9.0f ev/s %7.3f cpu_s/Mev | in epoll_wait: "
                "%7.0f ns/ev wall, %5.0f ns/ev cpu = %3.0f%% of cpu | %5.1f ev/poll %7.1f "
                "vcsw/1kev %5.3f spurious/ev | wall %.2f s%s%s",
                run_label(c).c_str(), pattern_name(c.pattern), n, c.threads, r.repeat,
                d.events_per_s, d.cpu_s_per_mev, d.poll_ns_per_event, d.poll_cpu_ns_per_event,
                100 * d.poll_cpu_share, d.events_per_poll, d.vcsw_per_1k, d.spurious_per_event,
                r.wall_s,
                std::string(r.stop) == "iterations" ? " (stopped by --max_iterations)" : "",
                ok ? "" : "  WARNING: wall time differs from --duration by more than 20%");
  if (!FLAGS_csv) {
    std::printf("%s\n", text);
    std::fflush(stdout);
    return;
  }
  std::fprintf(stderr, "%s\n", text);
  std::printf(
      "storm,%s,%s,%s,%d,%d,%d,%s,%d,%.3f,%.4f,%s,%d,%llu,%llu,%.1f,%.5f,%.4f,%.1f,%.1f,%.4f,%.2f,"
      "%.3f,%.5f,%llu,%llu,%.4f,%.3f\n",
      run_label(c).c_str(), FLAGS_transport.c_str(), pattern_name(c.pattern), n, c.threads,
      c.max_events, arm, r.repeat, FLAGS_duration, r.wall_s, r.stop, ok ? 1 : 0,
      static_cast<unsigned long long>(r.rounds), static_cast<unsigned long long>(r.events),
      d.events_per_s, r.cpu_s, d.cpu_s_per_mev, d.poll_ns_per_event, d.poll_cpu_ns_per_event,
      d.poll_cpu_share, d.events_per_poll, d.vcsw_per_1k, d.spurious_per_event,
      static_cast<unsigned long long>(r.sum.stale_events),
      static_cast<unsigned long long>(r.sum.idle_timeouts), d.total_cpu_s_per_mev,
      d.total_vcsw_per_1k);
  std::fflush(stdout);
}

// A --design entry: a design's name, with "+task" for the task driver.
bool parse_design(absl::string_view s, Design* d, Driver* driver) {
  *driver = absl::ConsumeSuffix(&s, "+task") ? Driver::kTask : Driver::kThread;
  for (Design candidate : kAllDesigns) {
    if (s == design_name(candidate)) {
      *d = candidate;
      return true;
    }
  }
  return false;
}

int fail_flag(const std::string& what) {
  std::fprintf(stderr, "storm: %s\n", what.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  cli::accept_dashed_flags(argc, argv);
  gflags::SetUsageMessage("raw-epoll ready-storm benchmark: sharded vs global vs throttled");
  gflags::ParseCommandLineFlags(&argc, &argv, true);

  std::vector<std::pair<Design, Driver>> designs;
  for (absl::string_view s : absl::StrSplit(FLAGS_design, ',', absl::SkipEmpty())) {
    Design d;
    Driver driver;
    if (!parse_design(s, &d, &driver)) {
      return fail_flag("unknown --design '" + std::string(s) + "'");
    }
    designs.emplace_back(d, driver);
  }
  std::vector<int> threads;
  for (absl::string_view s : absl::StrSplit(FLAGS_threads, ',', absl::SkipEmpty())) {
    int t = 0;
    if (!absl::SimpleAtoi(absl::string_view(s.data(), s.size()), &t) || t < 1 || t > 1024) {
      return fail_flag("bad --threads entry '" + std::string(s) + "'");
    }
    threads.push_back(t);
  }
  if (designs.empty() || threads.empty()) return fail_flag("--design and --threads need entries");
  Pattern pattern;
  if (FLAGS_pattern == "burst")
    pattern = Pattern::kBurst;
  else if (FLAGS_pattern == "trickle")
    pattern = Pattern::kTrickle;
  else if (FLAGS_pattern == "stay-ready" || FLAGS_pattern == "stay_ready")
    pattern = Pattern::kStayReady;
  else
    return fail_flag("--pattern must be burst, trickle or stay-ready");
  if (FLAGS_pattern == "stay_ready") FLAGS_pattern = "stay-ready";
  Transport transport;
  if (FLAGS_transport == "tcp")
    transport = Transport::kTcp;
  else if (FLAGS_transport == "unix")
    transport = Transport::kUnix;
  else
    return fail_flag("--transport must be tcp or unix");
  Arm arm;
  if (FLAGS_arm == "oneshot")
    arm = Arm::kOneshot;
  else if (FLAGS_arm == "edge")
    arm = Arm::kEdge;
  else
    return fail_flag("--arm must be oneshot or edge");
  if (FLAGS_connections < 1) return fail_flag("--connections must be positive");
  if (FLAGS_max_events < 1) return fail_flag("--max_events must be positive");
  if (!(FLAGS_duration > 0)) return fail_flag("--duration must be positive");
  if (!(FLAGS_warmup >= 0)) return fail_flag("--warmup must be 0 or more seconds");
  if (FLAGS_repeats < 1) return fail_flag("--repeats must be positive");
  // Designs that cannot run here are left out with the reason, not failed.
  std::erase_if(designs, [&](const std::pair<Design, Driver>& v) {
    absl::Status usable = runtime_design_usable(v.first, pattern, v.second);
    if (!usable.ok()) {
      std::fprintf(stderr, "storm: skipping %s: %s\n",
                   run_label({.design = v.first, .driver = v.second}).c_str(),
                   std::string(usable.message()).c_str());
    }
    return !usable.ok();
  });
  if (designs.empty()) return 3;  // nothing to run (run_storm.sh treats 3 as "skipped")

  const int n = FLAGS_connections;
  const int max_threads = *std::max_element(threads.begin(), threads.end());
  // 2 fds per connection, one epoll fd per thread (sharded), the stop eventfd, stdio, slack.
  auto limit = ensure_fd_limit(2L * n + max_threads + 32);
  if (!limit.ok()) {
    std::fprintf(stderr, "storm: skipped: N=%d %s connections: %s\n", n, FLAGS_transport.c_str(),
                 std::string(limit.status().message()).c_str());
    return 3;
  }
  auto conns = ConnectionSet::open(transport, n);
  if (!conns.ok()) {
    std::fprintf(stderr, "storm: %s\n", conns.status().ToString().c_str());
    return 1;
  }

  const uint64_t cpu_clock_overhead_ns = calibrate_cpu_clock();
  const RunLimits limits{
      .duration_s = FLAGS_duration,
      .max_iterations = static_cast<uint64_t>(std::max<int64_t>(1, FLAGS_max_iterations)),
      .warmup_s = FLAGS_warmup};
  utsname uts{};
  uname(&uts);
  std::FILE* info = FLAGS_csv ? stderr : stdout;
  std::fprintf(
      info,
      "storm: kernel %s, %u CPUs; %s pattern, N=%d %s connections, threads %s, designs "
      "%s, max_events %d, arm %s, %.2f s x %d runs after %.2f s of warm-up each, open-file "
      "limit %ld, thread-CPU clock read %llu ns, runtime polls %s\n",
      uts.release, std::thread::hardware_concurrency(), FLAGS_pattern.c_str(), n,
      FLAGS_transport.c_str(), FLAGS_threads.c_str(), FLAGS_design.c_str(), FLAGS_max_events,
      FLAGS_arm.c_str(), FLAGS_duration, FLAGS_repeats, FLAGS_warmup, *limit,
      static_cast<unsigned long long>(cpu_clock_overhead_ns),
      FLAGS_time_polls ? "timed" : "untimed");
  if (FLAGS_csv && FLAGS_csv_header) std::printf("%s\n", kCsvHeader);

  for (int repeat = 1; repeat <= FLAGS_repeats; ++repeat) {
    for (int t : threads) {
      for (size_t k = 0; k < designs.size(); ++k) {
        const auto& [design, driver] =
            designs[(k + static_cast<size_t>(repeat) - 1) % designs.size()];
        RunConfig config{.design = design,
                         .pattern = pattern,
                         .arm = arm,
                         .threads = t,
                         .max_events = FLAGS_max_events,
                         .cpu_clock_overhead_ns = cpu_clock_overhead_ns,
                         .time_polls = FLAGS_time_polls,
                         .driver = driver};
        auto result = run_once(config, *conns, limits, repeat);
        if (!result.ok()) {
          std::fprintf(stderr, "storm: %s T=%d run %d failed: %s\n", run_label(config).c_str(), t,
                       repeat, result.status().ToString().c_str());
          return 1;
        }
        report(*result, n);
      }
    }
  }
  return 0;
}
