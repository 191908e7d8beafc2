// The only place that names concrete pollers.
#include "runtime/epoll_poller.h"
#include "runtime/poller.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace shardloop {

std::string_view backend_name(Backend backend) {
  switch (backend) {
    case Backend::kEpoll: return "epoll";
    case Backend::kIoUring: return "io_uring";
    case Backend::kAuto: return "auto";
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

absl::StatusOr<std::unique_ptr<Poller>> make_poller(Backend backend) {
  switch (backend) {
    case Backend::kAuto:  // epoll is the only backend this build has
    case Backend::kEpoll: {
      auto poller = EpollPoller::create();
      if (!poller.ok()) return poller.status();
      return std::unique_ptr<Poller>(std::move(*poller));
    }
    case Backend::kIoUring:
      return absl::UnimplementedError("the io_uring backend is not part of this build");
  }
  return absl::InvalidArgumentError("unknown backend");
}

}  // namespace shardloop
