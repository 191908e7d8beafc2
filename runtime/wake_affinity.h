// Wake affinity (adaptive mode): a stream whose reader, each time it reads, wakes the same idle
// worker moves to that worker.
//
// The pattern: a task on worker B waits for what a stream owned by worker A brings (a reply, a
// round of a fan-in, a backend's response to a proxied request). Each message then costs two
// cross-thread wakeups: A's, from its poller, and B's, from A's post(). With the stream on B
// its event and the task waiting for it are on one thread, and neither wakeup happens. Go's
// scheduler gets the same by running any goroutine on any thread; shardloop keeps its ownership
// rule (one worker touches a stream) and moves the stream instead (AsyncFd::migrate_to).
//
// How it is seen: a worker counts the post()s made on its thread that found another worker of
// its runtime idle (parked in its poller, or spinning before a park) and remembers the last one
// (Worker::idle_wakes, last_idle_woken). A following stream takes that count when a read
// returns data, from where its task runs, and looks again when its next read waits. The window
// counts only if nothing else ran on the worker in between (Worker::jobs_begun unchanged): a
// task that awaited something else between two reads (a write held by backpressure, a sleep, a
// submit_to) let other tasks run, whose posts are not its own, and such a read ends the streak.
// `reads` reads in a row (RuntimeOptions::wake_affinity_reads) that each woke the same worker
// move the stream there, if it can move at once (a read waits under a root task, no write or
// readiness wait is pending: what AsyncFd::migrate_to starts a move on); otherwise the streak
// starts over.
// Only idle targets count: a busy worker takes a post without a wakeup, so there is nothing to
// save, and moving a fan-in's streams onto a busy coordinator would pile work on it.
//
// A stream moves this way at most once per kCooldown: two streams whose readers wake each
// other's workers would otherwise trade places on every streak.
//
// Opt in (AsyncFd::follow_wakes, net::Connection::follow_wakes): a move needs the task to hold
// nothing else of its worker across the read, which only the task's author can promise.
// The rebalancer (scheduler/rebalancer.h), where one runs, moves streams by load and may move
// such a stream back; each has its own per-stream cooldown (here a second, there a number of
// rebalance rounds), which bounds how often the two can trade it. A channel's sends count when
// flushed before the next read (Channel::flush): otherwise they go out after the task suspended,
// outside the window.
//
// Thread-safety: owner only (the stream's worker), like the AsyncFd that holds it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"

namespace shardloop {

class Worker;

class WakeFollower {
 public:
  // Starts the move to `target` (AsyncFd::migrate_to with the owner's hooks).
  using Move = absl::AnyInvocable<absl::Status(Worker& target)>;
  static constexpr std::chrono::seconds kCooldown{1};

  explicit WakeFollower(Move move) : move_(std::move(move)) {}

  // What a worker's counters say at a point of the stream's task (Worker::idle_wakes,
  // jobs_begun, last_idle_woken).
  struct Counts {
    uint64_t idle_wakes;
    uint64_t jobs_begun;
    size_t last_woken = 0;
  };

  // A read returned data.
  void read_returned(Counts now) {
    at_return_ = now;
    returned_ = true;
  }

  // The stream's next read waits. The worker to move to, when this read ends a streak of
  // `reads` (> 0) that each woke `now.last_woken`, the stream can move (`movable`) and the
  // cooldown is over.
  std::optional<size_t> read_waits(Counts now, uint32_t reads, bool movable) {
    if (!returned_) return std::nullopt;  // the stream's first read
    returned_ = false;
    if (now.jobs_begun != at_return_.jobs_begun || now.idle_wakes == at_return_.idle_wakes) {
      streak_ = 0;  // other tasks ran in between, or this one woke nobody
      return std::nullopt;
    }
    const size_t last_woken = now.last_woken;
    if (streak_ > 0 && target_ == last_woken) {
      ++streak_;
    } else {
      target_ = last_woken;
      streak_ = 1;
    }
    if (streak_ < reads) return std::nullopt;
    streak_ = 0;
    if (!movable) return std::nullopt;
    const auto t = std::chrono::steady_clock::now();
    if (t < next_allowed_) return std::nullopt;
    next_allowed_ = t + kCooldown;
    return target_;
  }

  absl::Status move(Worker& target) { return move_(target); }

 private:
  Move move_;
  Counts at_return_{};
  bool returned_ = false;
  size_t target_ = 0;
  uint32_t streak_ = 0;
  std::chrono::steady_clock::time_point next_allowed_{};
};

}  // namespace shardloop
