#include "bench/storm/poll_designs.h"

#include <errno.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <limits>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "bench/storm/driver_rounds.h"
#include "bench/storm/runtime_design.h"
#include "runtime/errno_status.h"

namespace shardloop::bench::storm {
namespace {

// epoll_event.data.u64 of the stop eventfd; connections carry their index.
constexpr uint64_t kStopTag = std::numeric_limits<uint64_t>::max();

// Blocked workers wake at least this often even if no wakeup reaches them: it bounds how long a
// bug in a design could stall a run's end, and at 5 wakeups per second per idle thread it is
// invisible in the counts. Calls that end by this timeout count as idle, not spurious.
constexpr int kIdleTimeoutMs = 200;

uint64_t clock_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

absl::Status epoll_add(int epfd, int fd, uint32_t events, uint64_t data) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = data;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) return errno_status(errno, "epoll_ctl(ADD)");
  return absl::OkStatus();
}

absl::StatusOr<int> new_epoll() {
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return errno_status(errno, "epoll_create1");
  return epfd;
}

// The interest flags of a connection's worker end in a shared epoll instance.
uint32_t shared_flags(const RunConfig& c) {
  if (c.pattern == Pattern::kStayReady) return EPOLLIN;  // level-triggered: stays reported
  return EPOLLIN | (c.arm == Arm::kOneshot ? EPOLLONESHOT : EPOLLET);
}

bool needs_rearm(const RunConfig& c) {
  return c.pattern != Pattern::kStayReady && c.arm == Arm::kOneshot;
}

// One timed epoll_wait. Drops the stop fd's event from `events` (setting *saw_stop) and returns
// how many connection events remain; records the call in `st`.
int timed_poll(int epfd, epoll_event* events, int capacity, uint64_t cpu_overhead_ns,
               ThreadStats& st, bool* saw_stop) {
  uint64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
  uint64_t wall0 = clock_ns(CLOCK_MONOTONIC);
  int n = epoll_wait(epfd, events, capacity, kIdleTimeoutMs);
  uint64_t wall = clock_ns(CLOCK_MONOTONIC) - wall0;
  uint64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
  cpu = cpu > cpu_overhead_ns ? cpu - cpu_overhead_ns : 0;
  *saw_stop = false;
  if (n < 0) n = 0;  // EINTR: counted below as a poll that returned nothing
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    if (events[i].data.u64 == kStopTag) {
      *saw_stop = true;
    } else {
      events[kept++] = events[i];
    }
  }
  if (n == 0 && wall >= static_cast<uint64_t>(kIdleTimeoutMs) * 900'000u) {
    ++st.idle_timeouts;
    return 0;
  }
  if (kept == 0 && *saw_stop) return 0;  // the end-of-run wakeup is not a poll of the run
  ++st.polls;
  st.polled_events += static_cast<uint64_t>(kept);
  st.poll_wall_ns += wall;
  st.poll_cpu_ns += cpu;
  if (kept == 0 && !*saw_stop) ++st.spurious;
  return kept;
}

// Handles one connection event: reads the pending byte(s) (burst, trickle) and re-arms a
// one-shot registration, or does nothing (stay-ready). Returns the events it accounts for:
// bytes read, 1 for stay-ready, 0 for a stale event (nothing to read).
uint64_t handle_event(const RunState& run, uint64_t index, int rearm_epfd, ThreadStats& st) {
  if (run.config.pattern == Pattern::kStayReady) return 1;
  int fd = run.conns.worker_fd(static_cast<int>(index));
  char buf[64];
  ssize_t r;
  do {
    r = read(fd, buf, sizeof buf);
  } while (r < 0 && errno == EINTR);
  if (rearm_epfd >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u64 = index;
    if (epoll_ctl(rearm_epfd, EPOLL_CTL_MOD, fd, &ev) != 0) {
      std::fprintf(stderr, "storm: epoll_ctl(MOD) on connection %llu: %s\n",
                   static_cast<unsigned long long>(index), errno_description(errno));
    }
  }
  if (r > 0) return static_cast<uint64_t>(r);
  if (r == 0 || errno != EAGAIN) {
    std::fprintf(stderr, "storm: connection %llu: %s\n", static_cast<unsigned long long>(index),
                 r == 0 ? "closed by peer" : errno_description(errno));
  }
  ++st.stale_events;
  return 0;
}

// Handles a batch a thread polled itself (sharded, global) and publishes it.
void handle_batch(RunState& run, const epoll_event* events, int n, int rearm_epfd,
                  ThreadStats& st) {
  uint64_t done = 0;
  for (int i = 0; i < n; ++i) done += handle_event(run, events[i].data.u64, rearm_epfd, st);
  if (n > 0 && done == 0) ++st.spurious;  // every event was another thread's
  st.handled += done;
  st.progress.store(st.handled, std::memory_order_relaxed);
  if (done > 0 && run.config.pattern != Pattern::kStayReady) run.publish_consumed(done);
}

class Sharded final : public PollDesign {
 public:
  explicit Sharded(RunState& run)
      : run_(run), epfds_(static_cast<size_t>(run.config.threads), -1) {}
  ~Sharded() override {
    for (int fd : epfds_) {
      if (fd >= 0) close(fd);
    }
  }

  absl::Status setup() override {
    const int n = run_.conns.size(), threads = run_.config.threads;
    for (int t = 0; t < threads; ++t) {
      auto epfd = new_epoll();
      if (!epfd.ok()) return epfd.status();
      epfds_[static_cast<size_t>(t)] = *epfd;
      if (auto s = epoll_add(*epfd, run_.stop_fd, EPOLLIN, kStopTag); !s.ok()) return s;
      // Thread t owns the contiguous block [n*t/threads, n*(t+1)/threads).
      for (int i = n * t / threads; i < n * (t + 1) / threads; ++i) {
        if (auto s = epoll_add(*epfd, run_.conns.worker_fd(i), EPOLLIN, static_cast<uint64_t>(i));
            !s.ok()) {
          return s;
        }
      }
    }
    return absl::OkStatus();
  }

  void run_worker(int t) override {
    ThreadStats& st = run_.stats[static_cast<size_t>(t)];
    std::vector<epoll_event> events(static_cast<size_t>(run_.config.max_events));
    bool saw_stop = false;
    while (!run_.stop.load()) {
      int n = timed_poll(epfds_[static_cast<size_t>(t)], events.data(), run_.config.max_events,
                         run_.config.cpu_clock_overhead_ns, st, &saw_stop);
      handle_batch(run_, events.data(), n, -1, st);
    }
  }

 private:
  RunState& run_;
  std::vector<int> epfds_;  // [thread]; written by setup() before the workers start
};

class Global final : public PollDesign {
 public:
  explicit Global(RunState& run) : run_(run) {}
  ~Global() override {
    if (epfd_ >= 0) close(epfd_);
  }

  absl::Status setup() override {
    auto epfd = new_epoll();
    if (!epfd.ok()) return epfd.status();
    epfd_ = *epfd;
    if (auto s = epoll_add(epfd_, run_.stop_fd, EPOLLIN, kStopTag); !s.ok()) return s;
    for (int i = 0; i < run_.conns.size(); ++i) {
      if (auto s = epoll_add(epfd_, run_.conns.worker_fd(i), shared_flags(run_.config),
                             static_cast<uint64_t>(i));
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }

  void run_worker(int t) override {
    ThreadStats& st = run_.stats[static_cast<size_t>(t)];
    std::vector<epoll_event> events(static_cast<size_t>(run_.config.max_events));
    const int rearm = needs_rearm(run_.config) ? epfd_ : -1;
    bool saw_stop = false;
    while (!run_.stop.load()) {
      int n = timed_poll(epfd_, events.data(), run_.config.max_events,
                         run_.config.cpu_clock_overhead_ns, st, &saw_stop);
      handle_batch(run_, events.data(), n, rearm, st);
    }
  }

 private:
  RunState& run_;
  int epfd_ = -1;  // written by setup() before the workers start
};

// Thread-safety: `token_`, `queue_` and `parked_` are guarded by `mu_`. The token lives under
// the same mutex as the queue so that "queue empty and token taken" is one consistent test
// before a worker parks: the poller holds the token for the whole epoll_wait and never parks,
// and every thread that fails to take it parks only while someone else polls, so some thread is
// always polling or about to.
class Throttled final : public PollDesign {
 public:
  enum class Token { kFree, kPolling };

  explicit Throttled(RunState& run) : run_(run) {}
  ~Throttled() override {
    if (epfd_ >= 0) close(epfd_);
  }

  absl::Status setup() override {
    auto epfd = new_epoll();
    if (!epfd.ok()) return epfd.status();
    epfd_ = *epfd;
    if (auto s = epoll_add(epfd_, run_.stop_fd, EPOLLIN, kStopTag); !s.ok()) return s;
    for (int i = 0; i < run_.conns.size(); ++i) {
      if (auto s = epoll_add(epfd_, run_.conns.worker_fd(i), shared_flags(run_.config),
                             static_cast<uint64_t>(i));
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }

  void run_worker(int t) override {
    ThreadStats& st = run_.stats[static_cast<size_t>(t)];
    std::vector<epoll_event> events(static_cast<size_t>(run_.config.max_events));
    const int rearm = needs_rearm(run_.config) ? epfd_ : -1;
    const bool publish = run_.config.pattern != Pattern::kStayReady;
    uint64_t unpublished = 0;
    // Handled events reach RunState::consumed before this thread blocks, never later.
    auto flush = [&] {
      if (publish && unpublished > 0) run_.publish_consumed(unpublished);
      unpublished = 0;
      st.progress.store(st.handled, std::memory_order_relaxed);
    };
    auto handle = [&](uint64_t index) {
      uint64_t done = handle_event(run_, index, rearm, st);
      st.handled += done;
      unpublished += done;
    };

    std::unique_lock<std::mutex> lock(mu_);
    while (!run_.stop.load()) {
      if (!queue_.empty()) {
        uint64_t index = queue_.front();
        queue_.pop_front();
        lock.unlock();
        handle(index);
        lock.lock();
        continue;
      }
      if (token_ == Token::kFree) {
        token_ = Token::kPolling;
        lock.unlock();
        flush();
        bool saw_stop = false;
        int n = timed_poll(epfd_, events.data(), run_.config.max_events,
                           run_.config.cpu_clock_overhead_ns, st, &saw_stop);
        size_t wake = 0;
        lock.lock();
        // Keep the first event, queue the rest (at most max_events - 1: the fairness bound).
        for (int i = 1; i < n; ++i) queue_.push_back(events[static_cast<size_t>(i)].data.u64);
        token_ = Token::kFree;
        if (n > 1) wake = std::min(static_cast<size_t>(n - 1), parked_);
        lock.unlock();
        for (size_t i = 0; i < wake; ++i) cv_.notify_one();
        if (n > 0) handle(events[0].data.u64);
        lock.lock();
        continue;
      }
      // Someone else is polling and there is nothing to run: park.
      lock.unlock();
      flush();
      lock.lock();
      if (!queue_.empty() || token_ == Token::kFree || run_.stop.load()) continue;
      ++parked_;
      auto woke = cv_.wait_for(lock, std::chrono::milliseconds(kIdleTimeoutMs));
      --parked_;
      if (woke == std::cv_status::timeout) {
        ++st.idle_timeouts;
      } else if (queue_.empty() && !run_.stop.load()) {
        ++st.spurious;  // woken for an event another thread took first
      }
    }
    lock.unlock();
    flush();
  }

  void wake_all() override {
    { std::lock_guard<std::mutex> lock(mu_); }  // a thread about to park sees stop or is parked
    cv_.notify_all();
  }

 private:
  RunState& run_;
  int epfd_ = -1;  // written by setup() before the workers start
  std::mutex mu_;
  std::condition_variable cv_;
  Token token_ = Token::kFree;  // guarded by mu_
  std::deque<uint64_t> queue_;  // guarded by mu_: connection indices polled, not yet taken
  size_t parked_ = 0;           // guarded by mu_: threads waiting on cv_
};

}  // namespace

uint64_t calibrate_cpu_clock() {
  std::vector<uint64_t> samples(2001);
  for (uint64_t& s : samples) {
    uint64_t a = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    s = clock_ns(CLOCK_THREAD_CPUTIME_ID) - a;
  }
  std::nth_element(samples.begin(), samples.begin() + 1000, samples.end());
  return samples[1000];
}

const char* design_name(Design d) {
  switch (d) {
    case Design::kSharded:
      return "sharded";
    case Design::kGlobal:
      return "global";
    case Design::kThrottled:
      return "throttled";
    case Design::kRtSharded:
      return "rt-sharded";
    case Design::kRtGlobal:
      return "rt-global";
    case Design::kRtThrottled:
      return "rt-throttled";
    case Design::kRtAdaptive:
      return "rt-adaptive";
    case Design::kRtShardedUring:
      return "rt-sharded-uring";
    case Design::kRtAdaptiveUring:
      return "rt-adaptive-uring";
  }
  return "?";
}

const char* pattern_name(Pattern p) {
  switch (p) {
    case Pattern::kBurst:
      return "burst";
    case Pattern::kTrickle:
      return "trickle";
    case Pattern::kStayReady:
      return "stay-ready";
  }
  return "?";
}

const char* arm_name(Arm a) { return a == Arm::kOneshot ? "oneshot" : "edge"; }

std::string run_label(const RunConfig& config) {
  std::string label = design_name(config.design);
  if (config.driver == Driver::kTask) label += "+task";
  return label;
}

bool RunState::add_consumed(uint64_t n) {
  uint64_t now = consumed.fetch_add(n) + n;
  uint64_t want = target.load();
  return now >= want && now - n < want;
}

void RunState::publish_consumed(uint64_t n) {
  if (add_consumed(n)) {
    done_seq.fetch_add(1);
    wake_one(done_seq);
  }
}

std::unique_ptr<PollDesign> make_design(RunState& run) {
  switch (run.config.design) {
    case Design::kSharded:
      return std::make_unique<Sharded>(run);
    case Design::kGlobal:
      return std::make_unique<Global>(run);
    case Design::kThrottled:
      return std::make_unique<Throttled>(run);
    default:
      return make_runtime_design(run);
  }
}

}  // namespace shardloop::bench::storm
