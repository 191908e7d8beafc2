// The shared epoll instance of the global and throttled poll modes (poll_mode.h), and the
// per-worker Poller that uses it.
//
// SharedEpoll is one epoll instance for all workers' fds. Every registration carries its
// owner's index in the token's op byte (readiness tokens leave it 0), so whichever worker fetches
// an event knows whose it is: the owner dispatches it, the others hand it over (Worker::poll).
// That is the ownership rule kept in a shared design: any worker may *find* a ready fd, only
// its owner touches it. Close-vs-poll races cannot misdeliver: the owner removes the fd from the
// shared set before closing it, and an event fetched just before carries the old token, whose
// generation the owner's registry no longer honours.
//
// SharedEpollPoller is a worker's view: add/modify/remove go to the shared instance, and each
// worker keeps a private epoll holding its own wakeup eventfd and, nested, the shared epoll fd
// (reported with kSharedReadyToken when the shared set has events). A worker blocks on its
// private instance, so a wakeup reaches exactly the worker it is for, while readiness in the
// shared set wakes:
//   global     every parked worker (the nested fd is always watched, level-triggered): they
//              all race to fetch, as every idle thread does in Go's netpoller; a worker that is
//              running polls the shared set directly, non-blocking, once per loop iteration;
//   throttled  only the holder of the poller token: a worker may fetch from the shared set only
//              while it holds the token, watches the nested fd only while it holds it, and takes
//              at most PollerOptions::throttled_events_per_poll events per poll.
//
// Thread-safety: SharedEpoll's methods may be called from any thread (epoll_ctl and epoll_wait
// are thread-safe on one instance); the poller token is an atomic (below). A SharedEpollPoller
// is owner-only except wake(), like every Poller.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/epoll_poller.h"
#include "runtime/poll_mode.h"
#include "runtime/poller.h"

namespace shardloop {

class SharedEpoll {
 public:
  // Owners are numbered 0..kMaxWorkers-1 (the op byte holds owner + 1).
  static constexpr size_t kMaxWorkers = 255;

  static absl::StatusOr<std::unique_ptr<SharedEpoll>> create(PollMode mode);
  ~SharedEpoll();
  SharedEpoll(const SharedEpoll&) = delete;
  SharedEpoll& operator=(const SharedEpoll&) = delete;

  PollMode mode() const { return mode_; }
  int fd() const { return epfd_; }

  absl::Status control(int op, int fd, uint32_t owner, uint64_t token, uint32_t interest);
  // Non-blocking fetch of up to out.size() events, each tagged with its owner.
  absl::StatusOr<size_t> fetch(absl::Span<PollEvent> out, std::vector<epoll_event>& buffer);

  // The poller token (throttled mode). kFree -> kPolling by compare-exchange: the winner alone
  // may fetch. Acquire/release so that one holder's fetch happens-before the next holder's,
  // although the kernel's own lock already orders the epoll calls; the token is about *how many*
  // threads are inside the shared instance, not about data.
  bool try_acquire_token();
  void release_token();

 private:
  enum TokenState : uint32_t { kFree = 0, kPolling = 1 };
  SharedEpoll(PollMode mode, int epfd) : mode_(mode), epfd_(epfd) {}

  const PollMode mode_;
  const int epfd_;
  std::atomic<uint32_t> token_{kFree};
};

class SharedEpollPoller final : public Poller {
 public:
  static absl::StatusOr<std::unique_ptr<SharedEpollPoller>> create(SharedEpoll& shared,
                                                                   uint32_t owner,
                                                                   const PollerOptions& options);
  ~SharedEpollPoller() override;

  Backend backend() const override { return Backend::kEpoll; }
  absl::Status add(int fd, uint64_t token, uint32_t interest) override;
  absl::Status modify(int fd, uint64_t token, uint32_t interest) override;
  absl::Status remove(int fd, uint64_t token) override;
  absl::StatusOr<size_t> wait(absl::Span<PollEvent> out, int64_t timeout_ns) override;
  void wake() override;
  PollerCounters counters() const override;

 private:
  SharedEpollPoller(SharedEpoll& shared, uint32_t owner, std::unique_ptr<EpollPoller> own,
                    unsigned throttled_cap);
  // Blocks on the private instance; true if the shared set reported readiness.
  absl::StatusOr<bool> wait_private(int64_t timeout_ns);
  // Watches (or stops watching) the shared fd from the private instance (throttled mode).
  absl::Status watch_shared(bool on);
  absl::StatusOr<size_t> wait_global(absl::Span<PollEvent> out, int64_t timeout_ns);
  absl::StatusOr<size_t> wait_throttled(absl::Span<PollEvent> out, int64_t timeout_ns);

  SharedEpoll& shared_;
  const uint32_t owner_;
  // The private instance: this worker's wakeup eventfd and the nested shared fd.
  const std::unique_ptr<EpollPoller> own_;
  const unsigned throttled_cap_;
  std::vector<epoll_event> buffer_;  // for fetches from the shared set
  PollEvent own_events_[4];          // what the private instance reports (wakeups are consumed)
  uint64_t wait_calls_ = 0;
};

}  // namespace shardloop
