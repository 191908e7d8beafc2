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

// One readiness event or one completion. Readiness backends fill `token` and `events`;
// completion operations (CompletionIo) also fill `result` (the syscall's return value or
// -errno) and `flags` (IORING_CQE_F_* bits); which operation it was is in the token's op bits.
struct PollEvent {
  // `owner` value of an event for an fd the polling worker owns (every event of a private poller).
  static constexpr uint32_t kPollingWorker = ~uint32_t{0};

  uint64_t token = 0;
  uint32_t events = 0;
  int32_t result = 0;
  uint32_t flags = 0;
  // A shared poller (shared_epoll.h) also reports events for fds other workers own: the index
  // of the worker that owns this one, which alone may dispatch it.
  uint32_t owner = kPollingWorker;
};

class CompletionIo;

// Counters a poller keeps about itself. Owner-written; see Worker::stats() for how they are read.
struct PollerCounters {
  uint64_t wait_calls = 0;
  uint64_t wakeups_received = 0;
  // Completion backends only.
  uint64_t submissions = 0;     // SQEs handed to the kernel
  uint64_t completions = 0;     // CQEs reaped (wakeups and ignored ones included)
  uint64_t enter_calls = 0;     // io_uring_enter system calls
  uint64_t buffer_refills = 0;  // provided buffers returned to the ring
  uint64_t enobufs = 0;         // receives that found the buffer ring empty
  uint64_t cq_overflows = 0;    // times the completion queue overflowed into the kernel backlog
};

class Poller {
 public:
  virtual ~Poller() = default;

  virtual Backend backend() const = 0;

  // Starts reporting readiness of `fd` (kReadable/kWritable bits of `interest`) tagged `token`.
  virtual absl::Status add(int fd, uint64_t token, uint32_t interest) = 0;
  // Replaces the interest and token of a registered fd.
  virtual absl::Status modify(int fd, uint64_t token, uint32_t interest) = 0;
  // Stops reporting `fd` (registered with `token`). Must be called before the fd is closed. A
  // completion backend may still deliver events already in flight for it: they carry the old
  // token, which the worker's registry no longer honours.
  virtual absl::Status remove(int fd, uint64_t token) = 0;

  // Waits until at least one event is ready, wake() is called, or `timeout_ns` passes
  // (negative: no limit; 0: do not block). Fills `out` and returns how many were written.
  // Wakeups are consumed here and never reported as events.
  virtual absl::StatusOr<size_t> wait(absl::Span<PollEvent> out, int64_t timeout_ns) = 0;

  // Any thread: makes a blocked or the next wait() return promptly.
  virtual void wake() = 0;

  virtual PollerCounters counters() const = 0;

  // Completion-based socket I/O (io_uring), or nullptr for readiness-only backends.
  virtual CompletionIo* completion_io() { return nullptr; }
};

// Tuning for the pollers a runtime creates. Backends ignore what does not apply to them.
struct PollerOptions {
  // io_uring submission queue entries; the completion queue gets 4x as many so bursts of
  // multishot completions rarely overflow into the kernel's backlog.
  unsigned uring_entries = 1024;
  // io_uring provided receive buffers, count (a power of two) x size. 1024 x 8 KiB = 8 MiB per
  // worker: room for a thousand connections each holding one unread chunk.
  unsigned uring_buffer_count = 1024;
  unsigned uring_buffer_size = 8192;
  // Throttled poll mode: events one poll of the shared epoll takes at most, so that the worker
  // holding the poller token hands it on after a bounded batch (the fairness bound).
  unsigned throttled_events_per_poll = 64;
};

// Decides which concrete backend `requested` means on this kernel. kAuto picks io_uring when
// the kernel offers everything the UringPoller needs, else epoll, and logs one line saying why
// it fell back. An explicit kIoUring the kernel refuses is an error naming the reason. The probe
// runs on a short-lived thread, so the calling thread is left without io_uring state.
absl::StatusOr<Backend> resolve_backend(Backend requested);

// Creates a poller for a resolved backend (kEpoll or kIoUring). Call it on the thread that will
// own the poller: an io_uring instance is set up for a single issuer.
absl::StatusOr<std::unique_ptr<Poller>> make_poller(Backend backend,
                                                    const PollerOptions& options = {});

// Test seam: makes the next io_uring probes fail with `err` (0 restores normal behaviour), as a
// kernel without io_uring (ENOSYS) or a sandbox that forbids it (EPERM) would.
void inject_io_uring_failure_for_testing(int err);

}  // namespace shardloop
