#include "bench/storm/driver_rounds.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "runtime/errno_status.h"

namespace shardloop::bench::storm {

absl::Status poke(const ConnectionSet& conns, int i) {
  for (;;) {
    if (write(conns.driver_fd(i), "x", 1) == 1) return absl::OkStatus();
    if (errno != EINTR) return errno_status(errno, "write to connection " + std::to_string(i));
  }
}

StallWatch::StallWatch(const RunState& run)
    : run_(run), last_(run.consumed.load()), last_change_(now_s(CLOCK_MONOTONIC)) {}

bool StallWatch::stalled() {
  const uint64_t c = run_.consumed.load();
  const double now = now_s(CLOCK_MONOTONIC);
  if (c != last_) {
    last_ = c;
    last_change_ = now;
    return false;
  }
  return now - last_change_ > kStallSeconds;
}

void wait_on(std::atomic<uint32_t>& word, uint32_t seen) {
  timespec timeout{.tv_sec = 0, .tv_nsec = kDriverRecheckNs};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, seen, &timeout,
          nullptr, 0);
}

void wake_one(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr,
          0);
}

double now_s(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

DriverRounds::DriverRounds(RunState& run, const RunLimits& limits, double start)
    : run_(run),
      limits_(limits),
      start_(start),
      pick_(0, run.conns.size() - 1),
      target_(run.target.load()) {}

absl::StatusOr<bool> DriverRounds::begin_round() {
  if (started_) ++rounds_;
  started_ = true;
  if (now_s(CLOCK_MONOTONIC) - start_ >= limits_.duration_s) return false;
  if (rounds_ == std::max<uint64_t>(1, limits_.max_iterations)) {
    stop_ = "iterations";
    return false;
  }
  const int n = run_.conns.size();
  if (run_.config.pattern == Pattern::kBurst) {
    target_ += static_cast<uint64_t>(n);
    run_.target.store(target_);
    for (int i = 0; i < n; ++i) {
      if (auto s = poke(run_.conns, i); !s.ok()) return s;
    }
  } else {
    target_ += 1;
    run_.target.store(target_);
    if (auto s = poke(run_.conns, pick_(run_.trickle_rng)); !s.ok()) return s;
  }
  return true;
}

absl::Status DriverRounds::lost() const {
  if (run_.config.pattern == Pattern::kBurst) {
    const uint64_t n = static_cast<uint64_t>(run_.conns.size());
    const uint64_t base = target_ - n;
    const uint64_t consumed = run_.consumed.load();
    return absl::InternalError("burst round " + std::to_string(rounds_) + ": only " +
                               std::to_string(consumed > base ? consumed - base : 0) + " of " +
                               std::to_string(n) + " events consumed; events were lost");
  }
  return absl::InternalError("trickle event " + std::to_string(rounds_) +
                             " was never consumed; events were lost");
}

}  // namespace shardloop::bench::storm
