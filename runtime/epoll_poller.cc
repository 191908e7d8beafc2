#include "runtime/epoll_poller.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "absl/strings/str_format.h"
#include "runtime/epoll_util.h"
#include "runtime/errno_status.h"
#include "runtime/token.h"

namespace shardloop {
using epoll_util::from_epoll;
using epoll_util::to_epoll;

absl::StatusOr<std::unique_ptr<EpollPoller>> EpollPoller::create() {
  int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return errno_status(errno, "epoll_create1");
  int wakefd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakefd < 0) {
    int err = errno;
    ::close(epfd);
    return errno_status(err, "eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: a wakeup stays visible until wait() drains it
  ev.data.u64 = kWakeupToken;
  if (::epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) != 0) {
    int err = errno;
    ::close(wakefd);
    ::close(epfd);
    return errno_status(err, "epoll_ctl(ADD wakeup eventfd)");
  }
  return std::unique_ptr<EpollPoller>(new EpollPoller(epfd, wakefd));
}

EpollPoller::EpollPoller(int epfd, int wakefd) : epfd_(epfd), wakefd_(wakefd) {}

EpollPoller::~EpollPoller() {
  ::close(wakefd_);
  ::close(epfd_);
}

absl::Status EpollPoller::control(int op, int fd, uint64_t token, uint32_t interest) {
  return control_raw(op, fd, token, to_epoll(interest));
}

absl::Status EpollPoller::control_raw(int op, int fd, uint64_t token, uint32_t epoll_events) {
  epoll_event ev{};
  ev.events = epoll_events;
  ev.data.u64 = token;
  if (::epoll_ctl(epfd_, op, fd, &ev) != 0) {
    return errno_status(errno, absl::StrFormat("epoll_ctl(op %d, fd %d)", op, fd));
  }
  return absl::OkStatus();
}

absl::Status EpollPoller::add(int fd, uint64_t token, uint32_t interest) {
  return control(EPOLL_CTL_ADD, fd, token, interest);
}

absl::Status EpollPoller::modify(int fd, uint64_t token, uint32_t interest) {
  return control(EPOLL_CTL_MOD, fd, token, interest);
}

absl::Status EpollPoller::remove(int fd, uint64_t /*token*/) {
  if (::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr) != 0) {
    return errno_status(errno, absl::StrFormat("epoll_ctl(DEL, fd %d)", fd));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> EpollPoller::wait(absl::Span<PollEvent> out, int64_t timeout_ns) {
  if (out.empty()) return absl::InvalidArgumentError("Poller::wait needs room for one event");
  if (buffer_.size() < out.size()) buffer_.resize(out.size());
  ++counters_.wait_calls;

  int n = epoll_util::wait_ns(epfd_, buffer_.data(), static_cast<int>(out.size()), timeout_ns);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return errno_status(errno, "epoll_wait");
  }

  size_t written = 0;
  for (int i = 0; i < n; ++i) {
    const epoll_event& ev = buffer_[i];
    if (ev.data.u64 == kWakeupToken) {
      uint64_t value;
      // Drain the counter so the level-triggered registration goes quiet again.
      [[maybe_unused]] ssize_t r = ::read(wakefd_, &value, sizeof(value));
      ++counters_.wakeups_received;
      continue;
    }
    out[written++] = PollEvent{ev.data.u64, from_epoll(ev.events), 0, 0};
  }
  return written;
}

void EpollPoller::wake() {
  uint64_t one = 1;
  // EAGAIN means the counter is saturated, which still wakes the poller: nothing to do.
  [[maybe_unused]] ssize_t r = ::write(wakefd_, &one, sizeof(one));
}

}  // namespace shardloop
