#include "bench/storm/runtime_design.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/storm/driver_rounds.h"
#include "runtime/async_fd.h"
#include "runtime/errno_status.h"
#include "runtime/runtime.h"
#include "runtime/worker.h"

namespace shardloop::bench::storm {
namespace {

struct ModeAndBackend {
  PollMode mode;
  Backend backend;
};

ModeAndBackend mode_of(Design d) {
  switch (d) {
    case Design::kRtGlobal:
      return {PollMode::kGlobal, Backend::kEpoll};
    case Design::kRtThrottled:
      return {PollMode::kThrottled, Backend::kEpoll};
    case Design::kRtAdaptive:
      return {PollMode::kAdaptive, Backend::kEpoll};
    case Design::kRtShardedUring:
      return {PollMode::kSharded, Backend::kIoUring};
    case Design::kRtAdaptiveUring:
      return {PollMode::kAdaptive, Backend::kIoUring};
    default:
      return {PollMode::kSharded, Backend::kEpoll};
  }
}

// The worker the task driver runs on.
constexpr size_t kDriverWorker = 0;

// The task driver's wait for the end of its round.
//
// Thread-safety: the driver task (on kDriverWorker) resets it before each round and awaits it;
// the one reader whose addition reached the round's target fires it, on whichever worker owns
// that connection. Within a round `state_` changes only by exchanges: the await swaps in the
// suspended driver's handle, the fire swaps in kFired, and whichever comes second reads the
// other's value (an exchange reads the latest value), so the await finds kFired and does not
// suspend, or the fire finds the handle and has it resumed on the driver's worker, the thread
// that suspended it (inline there, or through its inbox, whose mutex orders the rest). The
// reset is a store, not an exchange, made before the round's pokes; that the fire follows it rests
// on the kernel ordering the poke's write before the reader's read, as `target` does (RunState).
// Readers never touch the driver's frame; acq_rel only keeps the handle's exchanges ordered.
class RoundDone {
 public:
  void reset() { state_.store(nullptr, std::memory_order_seq_cst); }
  bool await_ready() const { return state_.load(std::memory_order_acquire) == fired(); }
  bool await_suspend(std::coroutine_handle<> driver) {
    return state_.exchange(driver.address(), std::memory_order_acq_rel) != fired();
  }
  void await_resume() const {}

  // On a worker of `rt`.
  void fire(Runtime& rt) {
    void* waiting = state_.exchange(fired(), std::memory_order_acq_rel);
    if (waiting == nullptr) return;  // not suspended yet: its await sees kFired
    auto driver = std::coroutine_handle<>::from_address(waiting);
    Worker* here = Worker::current();
    if (here->index() == kDriverWorker) {
      here->schedule(driver);
    } else {
      rt.post_to(kDriverWorker, [driver] { driver.resume(); });
    }
  }

 private:
  static void* fired() { return reinterpret_cast<void*>(uintptr_t{1}); }
  std::atomic<void*> state_{nullptr};
};

class RuntimeDesign final : public PollDesign {
 public:
  explicit RuntimeDesign(RunState& run)
      : run_(run), bytes_(static_cast<size_t>(run.config.threads)) {}

  ~RuntimeDesign() override {
    // Stopping destroys the connection coroutines on their workers, which closes the dups.
    if (rt_ != nullptr) rt_->stop();
  }

  absl::Status setup() override {
    if (auto usable =
            runtime_design_usable(run_.config.design, run_.config.pattern, run_.config.driver);
        !usable.ok()) {
      return usable;
    }
    const ModeAndBackend mb = mode_of(run_.config.design);
    const size_t workers = static_cast<size_t>(run_.config.threads);
    rt_ = std::make_unique<Runtime>(RuntimeOptions{.workers = workers,
                                                   .backend = mb.backend,
                                                   .poll_mode = mb.mode,
                                                   .time_every_poll = run_.config.time_polls});
    if (auto s = rt_->start(); !s.ok()) return s;
    const int n = run_.conns.size();
    for (int i = 0; i < n; ++i) {
      int fd = ::dup(run_.conns.worker_fd(i));
      if (fd < 0) return errno_status(errno, "dup");
      const size_t w = static_cast<size_t>(i) % workers;
      rt_->spawn_on(w, [this, fd]() -> Task<void> { return serve(fd); });
    }
    // Every connection adopted, then a moment for the workers to park.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (adopted_.load() < n) {
      if (std::chrono::steady_clock::now() > give_up) {
        return absl::DeadlineExceededError(
            absl::StrCat("only ", adopted_.load(), " of ", n, " connections were adopted"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (failed_.load() > 0) {
      return absl::InternalError(absl::StrCat(failed_.load(), " connections could not be adopted"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    before_.clear();
    for (size_t w = 0; w < workers; ++w) before_.push_back(rt_->worker(w).stats());
    bytes_before_.assign(workers, 0);
    return absl::OkStatus();
  }

  bool drives_itself() const override { return run_.config.driver == Driver::kTask; }

  // The task driver: the rounds run as a task on kDriverWorker; this thread (the storm's) only
  // waits for it, watching for lost events as the driver thread does.
  absl::StatusOr<uint64_t> drive(const RunLimits& limits, double start,
                                 const char** stop) override {
    // A member, not a local: after a stall the task still holds it, and a late event could
    // resume it before the runtime is stopped. A second call (after a warm-up) replaces the
    // first's, whose task has ended: driver_finished_ was its last access.
    script_.emplace(run_, limits, start);
    driver_finished_.store(0, std::memory_order_relaxed);
    rt_->spawn_on(kDriverWorker, [this]() -> Task<void> { return drive_task(*script_); });
    StallWatch watch(run_);
    while (driver_finished_.load(std::memory_order_acquire) == 0) {
      wait_on(driver_finished_, 0);
      if (watch.stalled() && driver_finished_.load(std::memory_order_acquire) == 0) {
        // The task still waits (stopping the runtime destroys it); only atomics are read here.
        return absl::InternalError(absl::StrCat("task driver: ", run_.consumed.load(),
                                                " events consumed of ", run_.target.load(),
                                                " made ready; events were lost"));
      }
    }
    // The acquire above orders the task's last writes to script_ and driver_status_ before.
    if (!driver_status_.ok()) return driver_status_;
    *stop = script_->stop();
    return script_->rounds();
  }

  // After a warm-up: the workers' counters and byte counts start over.
  void measure_from_here() override {
    for (size_t w = 0; w < before_.size(); ++w) {
      before_[w] = rt_->worker(w).stats();
      bytes_before_[w] = bytes_[w].v.load(std::memory_order_relaxed);
    }
  }

  // The runtime's workers do the work; the storm's thread t only waits for the end of the run.
  void run_worker(int /*t*/) override { done_.wait(false); }

  // Driver, at the end of the run: the workers' counters become the run's figures.
  void wake_all() override {
    for (size_t w = 0; w < before_.size(); ++w) {
      const WorkerStats after = rt_->worker(w).stats();
      ThreadStats& st = run_.stats[w];
      st.polls = after.polls - before_[w].polls;
      st.polled_events = after.events - before_[w].events;
      st.handled = bytes_[w].v.load(std::memory_order_relaxed) - bytes_before_[w];
      // Untimed, the workers time only the polls that may block (their idle time): a partial
      // figure, so none is reported.
      if (!run_.config.time_polls) continue;
      st.poll_wall_ns = after.poll_ns - before_[w].poll_ns;
      // Less one CPU clock read per call, as the bare designs' timed_poll subtracts.
      const uint64_t cpu = after.poll_cpu_ns - before_[w].poll_cpu_ns;
      const uint64_t clock_cost = st.polls * run_.config.cpu_clock_overhead_ns;
      st.poll_cpu_ns = cpu > clock_cost ? cpu - clock_cost : 0;
    }
    done_.store(true);
    done_.notify_all();
  }

 private:
  // One per worker; written by that worker only (relaxed: a count the driver reads at the end).
  struct alignas(64) Count {
    std::atomic<uint64_t> v{0};
  };

  Task<void> serve(int fd) {
    auto afd = AsyncFd::adopt(fd, AsyncFd::Kind::kStream);
    if (!afd.ok()) failed_.fetch_add(1);
    adopted_.fetch_add(1);
    if (!afd.ok()) co_return;
    // The reader keeps nothing of its worker across a read (its counts are the current
    // worker's), so its stream may follow the driver's worker (wake affinity, adaptive mode).
    AsyncFd* stream = afd->get();
    stream->follow_wakes([stream](Worker& target) { return stream->migrate_to(target, {}); });
    char buf[256];
    for (;;) {
      auto n = co_await stream->read_some(absl::MakeSpan(buf));
      if (!n.ok() || *n == 0) co_return;
      const size_t w = Worker::current()->index();
      bytes_[w].v.store(bytes_[w].v.load(std::memory_order_relaxed) + *n,
                        std::memory_order_relaxed);
      if (run_.config.driver == Driver::kThread) {
        run_.publish_consumed(*n);
      } else if (run_.add_consumed(*n)) {
        round_done_.fire(*rt_);
      }
    }
  }

  Task<void> drive_task(DriverRounds& script) {
    for (;;) {
      round_done_.reset();
      auto more = script.begin_round();
      if (!more.ok()) driver_status_ = more.status();
      if (!more.ok() || !*more) break;
      co_await round_done_;
    }
    driver_finished_.store(1, std::memory_order_release);
    wake_one(driver_finished_);
  }

  RunState& run_;
  std::unique_ptr<Runtime> rt_;
  std::vector<Count> bytes_;
  std::vector<WorkerStats> before_;
  std::vector<uint64_t> bytes_before_;  // bytes_ when the measured part began
  std::atomic<int> adopted_{0};
  std::atomic<int> failed_{0};
  std::atomic<bool> done_{false};
  // The task driver's (drives_itself()): written by the task, read by the storm's thread after
  // it saw driver_finished_ (a futex word: 1 once the task ended, release/acquire).
  RoundDone round_done_;
  std::optional<DriverRounds> script_;
  absl::Status driver_status_;
  std::atomic<uint32_t> driver_finished_{0};
};

}  // namespace

bool is_runtime_design(Design d) {
  return d != Design::kSharded && d != Design::kGlobal && d != Design::kThrottled;
}

absl::Status runtime_design_usable(Design d, Pattern pattern, Driver driver) {
  if (!is_runtime_design(d)) {
    if (driver == Driver::kThread) return absl::OkStatus();
    return absl::UnimplementedError(
        "the task driver runs inside the runtime: the bare designs have none (thread only)");
  }
  if (pattern == Pattern::kStayReady) {
    return absl::UnimplementedError(
        "stay-ready does not apply to the runtime: it registers sockets edge-triggered and "
        "reads what is ready, so it never repeats a level-triggered poll over unread sockets");
  }
  if (mode_of(d).backend == Backend::kIoUring) {
    if (auto b = resolve_backend(Backend::kIoUring); !b.ok()) return b.status();
  }
  return absl::OkStatus();
}

std::unique_ptr<PollDesign> make_runtime_design(RunState& run) {
  return std::make_unique<RuntimeDesign>(run);
}

}  // namespace shardloop::bench::storm
