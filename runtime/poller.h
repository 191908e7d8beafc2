// Poller: the narrow interface between a worker and the kernel's readiness/completion API.
//
// A worker owns one Poller. It registers fds with a 64-bit token (see token.h), waits for
// events in batches, and is woken from other threads through wake(). Concrete pollers are
// named only by poller_factory.cc, which probes the kernel and picks one.
//
// Registration is edge-triggered: an fd is registered once with the interest it will ever
// need (usually read and write) and reports each *new* readiness; callers retry their syscall
// until EAGAIN before waiting again. This keeps poller syscalls off the request path.
//
// Thread-safety: every method except wake() is owner-only (the worker that created it).
// wake() may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace shardloop {

enum class Backend { kEpoll, kIoUring, kAuto };

std::string_view backend_name(Backend backend);
absl::StatusOr<Backend> parse_backend(std::string_view name);

// Interest and event bits share one namespace so a handler can test either.
namespace io_events {
inline constexpr uint32_t kReadable = 1u << 0;
inline constexpr uint32_t kWritable = 1u << 1;
inline constexpr uint32_t kHangup = 1u << 2;  // peer closed (one or both directions)
inline constexpr uint32_t kError = 1u << 3;   // pending socket error; the next syscall reports it
}  // namespace io_events

struct PollEvent {
  uint64_t token = 0;
  uint32_t events = 0;
};

// Counters a poller keeps about itself. Owner-written; see Worker::stats() for how they are read.
struct PollerCounters {
  uint64_t wait_calls = 0;
  uint64_t wakeups_received = 0;
};

class Poller {
 public:
  virtual ~Poller() = default;

  virtual Backend backend() const = 0;

  // Starts reporting readiness of `fd` (kReadable/kWritable bits of `interest`) tagged `token`.
  virtual absl::Status add(int fd, uint64_t token, uint32_t interest) = 0;
  // Replaces the interest and token of a registered fd.
  virtual absl::Status modify(int fd, uint64_t token, uint32_t interest) = 0;
  // Stops reporting `fd`. Must be called before the fd is closed.
  virtual absl::Status remove(int fd) = 0;

  // Waits until at least one event is ready, wake() is called, or `timeout_ns` passes
  // (negative: no limit; 0: do not block). Fills `out` and returns how many were written.
  // Wakeups are consumed here and never reported as events.
  virtual absl::StatusOr<size_t> wait(absl::Span<PollEvent> out, int64_t timeout_ns) = 0;

  // Any thread: makes a blocked or the next wait() return promptly.
  virtual void wake() = 0;

  virtual PollerCounters counters() const = 0;
};

// Creates a poller for `backend`. kAuto picks the best backend the kernel supports and logs
// why it fell back, if it did. An explicit backend the kernel refuses is an error.
absl::StatusOr<std::unique_ptr<Poller>> make_poller(Backend backend);

}  // namespace shardloop
