// The only place that names concrete pollers.
#include <atomic>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "runtime/epoll_poller.h"
#include "runtime/errno_status.h"
#include "runtime/log.h"
#include "runtime/poller.h"
#include "runtime/uring_poller.h"

namespace shardloop {
namespace {
// Relaxed: a test sets it before starting the runtime it probes.
std::atomic<int> g_injected_uring_errno{0};
}  // namespace

std::string_view backend_name(Backend backend) {
  switch (backend) {
    case Backend::kEpoll:
      return "epoll";
    case Backend::kIoUring:
      return "io_uring";
    case Backend::kAuto:
      return "auto";
  }
  return "unknown";
}

absl::StatusOr<Backend> parse_backend(std::string_view name) {
  if (name == "epoll") return Backend::kEpoll;
  if (name == "io_uring" || name == "uring") return Backend::kIoUring;
  if (name == "auto") return Backend::kAuto;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown backend '", std::string(name), "' (expected epoll, io_uring or auto)"));
}

void inject_io_uring_failure_for_testing(int err) {
  g_injected_uring_errno.store(err, std::memory_order_relaxed);
}

absl::StatusOr<Backend> resolve_backend(Backend requested) {
  if (requested == Backend::kEpoll) return Backend::kEpoll;
  absl::Status usable;
  if (int err = g_injected_uring_errno.load(std::memory_order_relaxed); err != 0) {
    usable = errno_status(err, "io_uring_setup (injected failure)");
  } else {
    // Probe on a short-lived thread: setting up and tearing down a ring gives the calling
    // thread io_uring task state whose asynchronous teardown can interrupt that thread's next
    // blocking call with a spurious EINTR (seen as recv() on a socket with SO_RCVTIMEO failing
    // at once). A probe must not leave that behind in its caller.
    std::thread([&] { usable = probe_io_uring(); }).join();
  }
  if (usable.ok()) return Backend::kIoUring;
  if (requested == Backend::kIoUring) {
    return absl::Status(usable.code(),
                        absl::StrCat("io_uring backend unavailable: ", usable.message()));
  }
  log(LogLevel::kInfo, "backend auto: using epoll because io_uring is unavailable: %s",
      usable.ToString());
  return Backend::kEpoll;
}

absl::StatusOr<std::unique_ptr<Poller>> make_poller(Backend backend, const PollerOptions& options) {
  switch (backend) {
    case Backend::kEpoll: {
      auto poller = EpollPoller::create();
      if (!poller.ok()) return poller.status();
      return std::unique_ptr<Poller>(std::move(*poller));
    }
    case Backend::kIoUring: {
      auto poller = UringPoller::create(options);
      if (!poller.ok()) return poller.status();
      return std::unique_ptr<Poller>(std::move(*poller));
    }
    case Backend::kAuto:
      break;
  }
  return absl::InvalidArgumentError("make_poller needs a resolved backend (see resolve_backend)");
}

}  // namespace shardloop
