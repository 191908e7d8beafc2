// Work-stealing deque micro-benchmarks: the owner's push/pop, single and half steals, and
// steal throughput with 1-3 thieves contending with the owner.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "runtime/work_stealing_deque.h"

namespace shardloop::scheduler {
namespace {

using Item = uintptr_t;

// Owner pushes one item and pops it back: the run queue's common case (wake one task, run it).
void BM_DequePushPop(benchmark::State& state) {
  auto [local, stealer] = make_work_stealing_deque<Item>();
  Item i = 0;
  for (auto _ : state) {
    bool ok = local.push(++i);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(local.pop());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DequePushPop);

// Owner pushes a burst of n, then pops them all.
void BM_DequePushPopBurst(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  auto [local, stealer] = make_work_stealing_deque<Item>();
  for (auto _ : state) {
    for (size_t i = 0; i < n; ++i) {
      bool ok = local.push(i);
      benchmark::DoNotOptimize(ok);
    }
    for (size_t i = 0; i < n; ++i) benchmark::DoNotOptimize(local.pop());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_DequePushPopBurst)->Arg(16)->Arg(256);

// One thread pushes 256 and steals them back one by one: the cost of a steal without contention.
void BM_DequeStealOne(benchmark::State& state) {
  auto [local, stealer] = make_work_stealing_deque<Item>();
  for (auto _ : state) {
    for (Item i = 0; i < 256; ++i) {
      bool ok = local.push(i);
      benchmark::DoNotOptimize(ok);
    }
    for (int i = 0; i < 256; ++i) benchmark::DoNotOptimize(stealer.steal());
  }
  state.SetItemsProcessed(state.iterations() * 256);
}
BENCHMARK(BM_DequeStealOne);

// steal_half_into() until the victim is empty, without contention (32-item batches).
void BM_DequeStealHalf(benchmark::State& state) {
  auto [victim, stealer] = make_work_stealing_deque<Item>();
  auto [mine, my_stealer] = make_work_stealing_deque<Item>();
  for (auto _ : state) {
    for (Item i = 0; i < 256; ++i) {
      bool ok = victim.push(i);
      benchmark::DoNotOptimize(ok);
    }
    while (stealer.steal_half_into(mine) != 0) {
      while (mine.pop()) {
      }
    }
  }
  state.SetItemsProcessed(state.iterations() * 256);
}
BENCHMARK(BM_DequeStealHalf);

// The owner pushes 64K items while `thieves` threads steal them; the owner pops only when its
// deque is full. An iteration ends when every item has been taken; items/s counts all of them
// and stolen_share says how many the thieves got.
void BM_DequeStealContended(benchmark::State& state) {
  const int thieves = static_cast<int>(state.range(0));
  constexpr uint64_t kItems = 1 << 16;
  auto [local, stealer] = make_work_stealing_deque<Item>();
  std::atomic<uint64_t> taken{0};
  std::atomic<uint64_t> stolen_total{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < thieves; ++t) {
    threads.emplace_back([&, s = stealer]() mutable {
      uint64_t mine = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (s.steal()) {
          ++mine;
          taken.fetch_add(1, std::memory_order_relaxed);
        } else {
          std::this_thread::yield();  // 2-CPU machines: give the owner the core
        }
      }
      stolen_total.fetch_add(mine);
    });
  }
  for (auto _ : state) {
    taken.store(0);
    uint64_t popped = 0;
    for (uint64_t i = 0; i < kItems; ++i) {
      while (!local.push(i)) {
        if (local.pop()) ++popped;  // full: the owner runs some itself
      }
    }
    while (local.pop()) ++popped;
    while (taken.load(std::memory_order_relaxed) + popped < kItems) std::this_thread::yield();
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kItems));
  state.counters["stolen_share"] =
      static_cast<double>(stolen_total.load()) / static_cast<double>(state.iterations() * kItems);
}
BENCHMARK(BM_DequeStealContended)->Arg(1)->Arg(3)->UseRealTime();

}  // namespace
}  // namespace shardloop::scheduler
