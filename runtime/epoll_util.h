// What the epoll-based pollers (epoll_poller.h, shared_epoll.h) share: the translation between
// shardloop's io_events bits and epoll's, and a wait with a nanosecond timeout.
#pragma once

#include <sys/epoll.h>

#include <cerrno>
#include <cstdint>
#include <ctime>

#include "runtime/poller.h"

namespace shardloop::epoll_util {

// fds are registered edge-triggered (see poller.h) and always watch for a peer's half-close.
inline uint32_t to_epoll(uint32_t interest) {
  uint32_t ev = EPOLLET | EPOLLRDHUP;
  if (interest & io_events::kReadable) ev |= EPOLLIN;
  if (interest & io_events::kWritable) ev |= EPOLLOUT;
  return ev;
}

inline uint32_t from_epoll(uint32_t ev) {
  uint32_t out = 0;
  if (ev & EPOLLIN) out |= io_events::kReadable;
  if (ev & EPOLLOUT) out |= io_events::kWritable;
  if (ev & (EPOLLRDHUP | EPOLLHUP)) out |= io_events::kHangup;
  if (ev & EPOLLERR) out |= io_events::kError;
  return out;
}

// epoll_wait with a timeout in nanoseconds (negative: no limit). Returns what epoll_wait
// returns, errno set on -1.
inline int wait_ns(int epfd, epoll_event* events, int capacity, int64_t timeout_ns) {
  if (timeout_ns < 0) return ::epoll_wait(epfd, events, capacity, -1);
  if (timeout_ns == 0) return ::epoll_wait(epfd, events, capacity, 0);
  // epoll_pwait2 takes a timespec, so timers are not rounded up to whole milliseconds.
  timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
              static_cast<long>(timeout_ns % 1'000'000'000)};
  int n = ::epoll_pwait2(epfd, events, capacity, &ts, nullptr);
  if (n < 0 && errno == ENOSYS) {  // kernels before 5.11
    int ms = static_cast<int>((timeout_ns + 999'999) / 1'000'000);
    n = ::epoll_wait(epfd, events, capacity, ms);
  }
  return n;
}

}  // namespace shardloop::epoll_util
