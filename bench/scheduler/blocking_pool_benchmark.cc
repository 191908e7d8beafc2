// BlockingPool throughput: N submitting threads (standing in for workers) x M pool threads,
// with empty functions, so the figure is the pool's own overhead per call (submit, wake, scan,
// run, completion callback). Each submitter keeps up to 64 calls outstanding, as a worker with
// 64 coroutines in run_blocking would. Next to it, the same load on a pool built the obvious
// way (one mutex + condition variable shared by everyone, seed 000's "P3-S1"), so the two are
// compared as a ratio measured in one run. Also: a spin-length sweep, calls that really block
// (100 us sleeps, throughput against M), and the futex park/unpark round trip that the pool's
// spin length is derived from.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "scheduler/blocking_pool.h"
#include "scheduler/parker.h"

namespace shardloop::scheduler {
namespace {

constexpr uint64_t kCallsPerSubmitter = 2000;  // per benchmark iteration, empty calls
constexpr uint64_t kWindow = 64;               // outstanding calls per submitter

// The baseline: every submit and every take goes through one lock.
class MutexQueuePool {
 public:
  explicit MutexQueuePool(size_t threads) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }
  ~MutexQueuePool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void submit(std::function<void()> fn, std::function<void()> done) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back({std::move(fn), std::move(done)});
    }
    cv_.notify_one();
  }

 private:
  void run() {
    for (;;) {
      std::pair<std::function<void()>, std::function<void()>> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job.first();
      job.second();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::function<void()>, std::function<void()>>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// N submitter threads that wait for a start signal each iteration, submit their calls with a
// bounded window, and report when all their completions have arrived.
class Submitters {
 public:
  using SubmitFn = std::function<void(size_t consumer, std::atomic<uint64_t>* completed)>;

  Submitters(size_t n, SubmitFn submit, uint64_t calls = kCallsPerSubmitter)
      : submit_(std::move(submit)), calls_(calls), completed_(n) {
    for (size_t c = 0; c < n; ++c) threads_.emplace_back([this, c] { run(c); });
  }
  ~Submitters() {
    generation_.store(kStop, std::memory_order_release);
    for (auto& t : threads_) t.join();
  }

  // One benchmark iteration: every submitter makes calls() calls.
  void round() {
    finished_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    while (finished_.load(std::memory_order_acquire) < threads_.size()) {
      std::this_thread::yield();
    }
  }

 private:
  static constexpr uint64_t kStop = ~uint64_t{0};

  void run(size_t c) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t g;
      while ((g = generation_.load(std::memory_order_acquire)) == seen) std::this_thread::yield();
      if (g == kStop) return;
      seen = g;
      completed_[c].store(0, std::memory_order_relaxed);
      for (uint64_t submitted = 0; submitted < calls_; ++submitted) {
        while (submitted - completed_[c].load(std::memory_order_acquire) >= kWindow) {
          std::this_thread::yield();  // 2 CPUs: a spinning submitter would starve the pool
        }
        submit_(c, &completed_[c]);
      }
      while (completed_[c].load(std::memory_order_acquire) < calls_) {
        std::this_thread::yield();
      }
      finished_.fetch_add(1, std::memory_order_release);
    }
  }

  SubmitFn submit_;
  const uint64_t calls_;
  std::vector<std::atomic<uint64_t>> completed_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<size_t> finished_{0};
  std::vector<std::thread> threads_;
};

void report(benchmark::State& state, size_t n) {
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n * kCallsPerSubmitter));
}

// Args: N submitters, M pool threads, spin in microseconds.
void BM_BlockingPool(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const auto m = static_cast<size_t>(state.range(1));
  BlockingPool pool({.threads = m,
                     .consumers = n,
                     .spin = std::chrono::microseconds(state.range(2)),
                     .name = "bench"});
  std::atomic<uint64_t> sink{0};
  Submitters submitters(n, [&](size_t c, std::atomic<uint64_t>* completed) {
    pool.submit(
        c, [&sink] { sink.fetch_add(1, std::memory_order_relaxed); },
        [completed](BlockingOutcome) { completed->fetch_add(1, std::memory_order_release); });
  });
  for (auto _ : state) submitters.round();
  report(state, n);
  const BlockingPoolStats stats = pool.stats();
  state.counters["parks/call"] =
      static_cast<double>(stats.parks) / static_cast<double>(stats.jobs_run);
  state.counters["wakeups/call"] =
      static_cast<double>(stats.wakeups) / static_cast<double>(stats.jobs_run);
}

void BM_MutexQueuePool(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const auto m = static_cast<size_t>(state.range(1));
  MutexQueuePool pool(m);
  std::atomic<uint64_t> sink{0};
  Submitters submitters(n, [&](size_t, std::atomic<uint64_t>* completed) {
    pool.submit([&sink] { sink.fetch_add(1, std::memory_order_relaxed); },
                [completed] { completed->fetch_add(1, std::memory_order_release); });
  });
  for (auto _ : state) submitters.round();
  report(state, n);
}

void pool_grid(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1, 2, 4, 8}) {
    for (int64_t m : {1, 2, 3, 4}) {
      b->Args(
          {n, m,
           std::chrono::duration_cast<std::chrono::microseconds>(kDefaultBlockingSpin).count()});
    }
  }
}
void mutex_grid(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1, 2, 4, 8}) {
    for (int64_t m : {1, 2, 3, 4}) b->Args({n, m});
  }
}
BENCHMARK(BM_BlockingPool)->Apply(pool_grid)->ArgNames({"N", "M", "spin_us"})->UseRealTime();
BENCHMARK(BM_MutexQueuePool)->Apply(mutex_grid)->ArgNames({"N", "M"})->UseRealTime();
// The spin length, side by side (the grid above uses the default).
void spin_sweep(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1, 4}) {
    for (int64_t spin : {0, 2, 5, 20, 50, 200}) b->Args({n, 2, spin});
  }
}
BENCHMARK(BM_BlockingPool)->Apply(spin_sweep)->ArgNames({"N", "M", "spin_us"})->UseRealTime();

// Calls that really block (sleep 100 us, like a slow syscall), N = 4 submitters: throughput
// should be M x 10,000/s if the pool runs M calls at once and adds little; M = 1 serialises
// every worker's blocking calls behind each other.
void BM_BlockingPoolSleepingCalls(benchmark::State& state) {
  constexpr size_t kSubmitters = 4;
  constexpr uint64_t kCalls = 100;  // per submitter and iteration
  const auto m = static_cast<size_t>(state.range(0));
  BlockingPool pool({.threads = m, .consumers = kSubmitters, .name = "bench"});
  Submitters submitters(
      kSubmitters,
      [&](size_t c, std::atomic<uint64_t>* completed) {
        pool.submit(
            c, [] { std::this_thread::sleep_for(std::chrono::microseconds(100)); },
            [completed](BlockingOutcome) { completed->fetch_add(1, std::memory_order_release); });
      },
      kCalls);
  for (auto _ : state) submitters.round();
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kSubmitters * kCalls));
}
BENCHMARK(BM_BlockingPoolSleepingCalls)->ArgName("M")->DenseRange(1, 4)->UseRealTime();

// Futex park/unpark round trip between two threads: A unparks B and parks; B wakes, unparks A
// and parks. Half of a round trip is what a parked pool thread costs a submitter in latency.
void BM_ParkUnparkRoundTrip(benchmark::State& state) {
  Parker a, b;
  std::atomic<bool> stop{false};
  std::thread other([&] {
    for (;;) {
      b.park();
      if (stop.load(std::memory_order_acquire)) return;
      a.unpark();
    }
  });
  for (auto _ : state) {
    b.unpark();
    a.park();
  }
  stop.store(true, std::memory_order_release);
  b.unpark();
  other.join();
}
BENCHMARK(BM_ParkUnparkRoundTrip)->UseRealTime();

}  // namespace
}  // namespace shardloop::scheduler

BENCHMARK_MAIN();
