#include "runtime/shared_epoll.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_format.h"
#include "runtime/epoll_util.h"
#include "runtime/errno_status.h"
#include "runtime/token.h"

namespace shardloop {
namespace {

// The private instance reports the nested shared fd with this token. Distinct from the
// reserved wakeup/ignore tokens and from any registry token (op byte 0xff, slot ~0).
constexpr uint64_t kSharedReadyToken = ~uint64_t{0} - 2;

}  // namespace

// --- SharedEpoll ---------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<SharedEpoll>> SharedEpoll::create(PollMode mode) {
  int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return errno_status(errno, "epoll_create1 (shared poll instance)");
  return std::unique_ptr<SharedEpoll>(new SharedEpoll(mode, epfd));
}

SharedEpoll::~SharedEpoll() { ::close(epfd_); }

absl::Status SharedEpoll::control(int op, int fd, uint32_t owner, uint64_t token,
                                  uint32_t interest) {
  if (owner >= kMaxWorkers || op_of(token) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("shared epoll: owner %u or token op %u out of range", owner, op_of(token)));
  }
  epoll_event ev{};
  ev.events = op == EPOLL_CTL_DEL ? 0 : epoll_util::to_epoll(interest);
  ev.data.u64 = with_op(token, static_cast<uint8_t>(owner + 1));
  if (::epoll_ctl(epfd_, op, fd, op == EPOLL_CTL_DEL ? nullptr : &ev) != 0) {
    return errno_status(errno,
                        absl::StrFormat("epoll_ctl(op %d, fd %d) on the shared instance", op, fd));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> SharedEpoll::fetch(absl::Span<PollEvent> out,
                                          std::vector<epoll_event>& buffer) {
  if (buffer.size() < out.size()) buffer.resize(out.size());
  int n = ::epoll_wait(epfd_, buffer.data(), static_cast<int>(out.size()), 0);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return errno_status(errno, "epoll_wait (shared poll instance)");
  }
  for (int i = 0; i < n; ++i) {
    const uint64_t data = buffer[i].data.u64;
    out[i] = PollEvent{with_op(data, 0), epoll_util::from_epoll(buffer[i].events), 0, 0,
                       static_cast<uint32_t>(op_of(data)) - 1};
  }
  return static_cast<size_t>(n);
}

bool SharedEpoll::try_acquire_token() {
  uint32_t expected = kFree;
  // Cheap read first, so that waiting workers do not bounce the line with failed RMWs.
  return token_.load(std::memory_order_relaxed) == kFree &&
         token_.compare_exchange_strong(expected, kPolling, std::memory_order_acquire,
                                        std::memory_order_relaxed);
}

void SharedEpoll::release_token() { token_.store(kFree, std::memory_order_release); }

// --- SharedEpollPoller ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<SharedEpollPoller>> SharedEpollPoller::create(
    SharedEpoll& shared, uint32_t owner, const PollerOptions& options) {
  if (owner >= SharedEpoll::kMaxWorkers) {
    return absl::InvalidArgumentError(absl::StrFormat("poll mode '%s' supports at most %d workers",
                                                      std::string(poll_mode_name(shared.mode())),
                                                      SharedEpoll::kMaxWorkers));
  }
  auto own = EpollPoller::create();
  if (!own.ok()) return own.status();
  // global: always watched, level-triggered, so events left in the shared set keep waking
  // parked workers until someone takes them. throttled: registered unwatched (no event bits),
  // watched only by the token holder while it blocks.
  const uint32_t watch = shared.mode() == PollMode::kGlobal ? uint32_t{EPOLLIN} : 0u;
  if (auto st = (*own)->control_raw(EPOLL_CTL_ADD, shared.fd(), kSharedReadyToken, watch);
      !st.ok()) {
    return st;
  }
  unsigned cap = std::max(1u, options.throttled_events_per_poll);
  return std::unique_ptr<SharedEpollPoller>(
      new SharedEpollPoller(shared, owner, std::move(*own), cap));
}

SharedEpollPoller::SharedEpollPoller(SharedEpoll& shared, uint32_t owner,
                                     std::unique_ptr<EpollPoller> own, unsigned throttled_cap)
    : shared_(shared), owner_(owner), own_(std::move(own)), throttled_cap_(throttled_cap) {}

SharedEpollPoller::~SharedEpollPoller() = default;

absl::Status SharedEpollPoller::add(int fd, uint64_t token, uint32_t interest) {
  return shared_.control(EPOLL_CTL_ADD, fd, owner_, token, interest);
}

absl::Status SharedEpollPoller::modify(int fd, uint64_t token, uint32_t interest) {
  return shared_.control(EPOLL_CTL_MOD, fd, owner_, token, interest);
}

absl::Status SharedEpollPoller::remove(int fd, uint64_t token) {
  return shared_.control(EPOLL_CTL_DEL, fd, owner_, token, 0);
}

void SharedEpollPoller::wake() { own_->wake(); }

PollerCounters SharedEpollPoller::counters() const {
  PollerCounters c = own_->counters();
  c.wait_calls = wait_calls_;
  return c;
}

absl::StatusOr<bool> SharedEpollPoller::wait_private(int64_t timeout_ns) {
  auto n = own_->wait(absl::MakeSpan(own_events_), timeout_ns);
  if (!n.ok()) return n.status();
  for (size_t i = 0; i < *n; ++i) {
    if (own_events_[i].token == kSharedReadyToken) return true;
  }
  return false;
}

absl::Status SharedEpollPoller::watch_shared(bool on) {
  return own_->control_raw(EPOLL_CTL_MOD, shared_.fd(), kSharedReadyToken,
                           on ? uint32_t{EPOLLIN} : 0u);
}

absl::StatusOr<size_t> SharedEpollPoller::wait(absl::Span<PollEvent> out, int64_t timeout_ns) {
  if (out.empty()) return absl::InvalidArgumentError("Poller::wait needs room for one event");
  ++wait_calls_;
  return shared_.mode() == PollMode::kGlobal ? wait_global(out, timeout_ns)
                                             : wait_throttled(out, timeout_ns);
}

absl::StatusOr<size_t> SharedEpollPoller::wait_global(absl::Span<PollEvent> out,
                                                      int64_t timeout_ns) {
  // A running worker polls the shared set itself, between tasks; an idle one sleeps on its
  // private instance until the shared set (or its own wakeup) wakes it, then races the other
  // woken workers for the events: the thundering herd is part of this design.
  if (timeout_ns != 0) {
    auto shared_ready = wait_private(timeout_ns);
    if (!shared_ready.ok()) return shared_ready.status();
    if (!*shared_ready) return 0;
  }
  return shared_.fetch(out, buffer_);
}

absl::StatusOr<size_t> SharedEpollPoller::wait_throttled(absl::Span<PollEvent> out,
                                                         int64_t timeout_ns) {
  if (!shared_.try_acquire_token()) {
    // Another worker is the poller: it hands over what it finds for our fds.
    if (timeout_ns == 0) return 0;
    auto r = wait_private(timeout_ns);
    return r.ok() ? absl::StatusOr<size_t>(0) : absl::StatusOr<size_t>(r.status());
  }
  // Holding the token. Whatever happens below, give it back before returning: a worker that
  // leaves this function without the token never stops the others from polling.
  absl::StatusOr<size_t> result = 0;
  bool fetch = true;
  if (timeout_ns != 0) {
    absl::Status watched = watch_shared(true);
    absl::StatusOr<bool> shared_ready = watched.ok() ? wait_private(timeout_ns) : watched;
    absl::Status unwatched = watch_shared(false);
    if (!shared_ready.ok()) {
      result = shared_ready.status();
      fetch = false;
    } else if (!unwatched.ok()) {
      result = unwatched;
      fetch = false;
    } else {
      fetch = *shared_ready;
    }
  }
  if (fetch)
    result = shared_.fetch(out.first(std::min<size_t>(out.size(), throttled_cap_)), buffer_);
  shared_.release_token();
  return result;
}

}  // namespace shardloop
