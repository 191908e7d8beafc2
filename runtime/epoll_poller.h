// EpollPoller: one epoll instance plus an eventfd for cross-thread wakeups.
//
// fds are registered EPOLLET | EPOLLRDHUP with the caller's interest; the eventfd is
// registered level-triggered with kWakeupToken and drained inside wait(), so callers never see
// it. Thread-safety: as Poller (owner-only except wake()).
#pragma once

#include <sys/epoll.h>

#include <vector>

#include "runtime/poller.h"

namespace shardloop {

class EpollPoller final : public Poller {
 public:
  static absl::StatusOr<std::unique_ptr<EpollPoller>> create();
  ~EpollPoller() override;

  Backend backend() const override { return Backend::kEpoll; }
  absl::Status add(int fd, uint64_t token, uint32_t interest) override;
  absl::Status modify(int fd, uint64_t token, uint32_t interest) override;
  absl::Status remove(int fd, uint64_t token) override;
  absl::StatusOr<size_t> wait(absl::Span<PollEvent> out, int64_t timeout_ns) override;
  void wake() override;
  PollerCounters counters() const override { return counters_; }

  // For pollers built on this one (shared_epoll.h): an epoll_ctl with raw epoll bits (level-
  // triggered unless they say EPOLLET), for fds whose events the caller recognises by `token`.
  absl::Status control_raw(int op, int fd, uint64_t token, uint32_t epoll_events);

 private:
  EpollPoller(int epfd, int wakefd);
  absl::Status control(int op, int fd, uint64_t token, uint32_t interest);

  const int epfd_;
  const int wakefd_;
  std::vector<epoll_event> buffer_;  // reused across waits; grows to the largest `out` seen
  PollerCounters counters_;
};

}  // namespace shardloop
