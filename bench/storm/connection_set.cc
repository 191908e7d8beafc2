#include "bench/storm/connection_set.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/errno_status.h"

namespace shardloop::bench::storm {
namespace {

absl::Status set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return errno_status(errno, "fcntl(O_NONBLOCK)");
  }
  return absl::OkStatus();
}

void close_abortive(int fd) {
  if (fd < 0) return;
  linger lg{.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);  // no-op for AF_UNIX
  close(fd);
}

}  // namespace

absl::StatusOr<long> ensure_fd_limit(long needed) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return errno_status(errno, "getrlimit(NOFILE)");
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) return errno_status(errno, "setrlimit(NOFILE)");
  }
  if (lim.rlim_cur != RLIM_INFINITY && static_cast<long>(lim.rlim_cur) < needed) {
    return absl::FailedPreconditionError(absl::StrCat("needs about ", needed,
                                                      " file descriptors but the hard limit is ",
                                                      static_cast<long>(lim.rlim_max)));
  }
  return lim.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long>(lim.rlim_cur);
}

absl::StatusOr<ConnectionSet> ConnectionSet::open(Transport transport, int n) {
  ConnectionSet set;
  set.driver_fds_.reserve(static_cast<size_t>(n));
  set.worker_fds_.reserve(static_cast<size_t>(n));
  if (transport == Transport::kUnix) {
    for (int i = 0; i < n; ++i) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        return errno_status(errno, absl::StrCat("socketpair #", i));
      }
      set.driver_fds_.push_back(sv[0]);
      set.worker_fds_.push_back(sv[1]);
    }
    return set;
  }

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return errno_status(errno, "socket(listener)");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener, 16) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    close(listener);
    return errno_status(err, "listener on 127.0.0.1");
  }
  absl::Status status;
  for (int i = 0; i < n && status.ok(); ++i) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0) {
      status = errno_status(errno, absl::StrCat("socket #", i));
      break;
    }
    // Blocking connect: on loopback it returns once the handshake put the connection in the
    // listener's queue, so the accept below never waits.
    if (connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      status = errno_status(errno, absl::StrCat("connect #", i));
      close(c);
      break;
    }
    int s = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (s < 0) {
      status = errno_status(errno, absl::StrCat("accept #", i));
      close_abortive(c);
      break;
    }
    set.driver_fds_.push_back(c);
    set.worker_fds_.push_back(s);
    int one = 1;
    if (setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
      status = errno_status(errno, "setsockopt(TCP_NODELAY)");
      break;
    }
    status = set_nonblocking(c);
  }
  close(listener);
  if (!status.ok()) return status;
  return set;
}

ConnectionSet::ConnectionSet(ConnectionSet&& other) noexcept
    : driver_fds_(std::move(other.driver_fds_)), worker_fds_(std::move(other.worker_fds_)) {
  other.driver_fds_.clear();
  other.worker_fds_.clear();
}

ConnectionSet::~ConnectionSet() {
  for (int fd : driver_fds_) close_abortive(fd);
  for (int fd : worker_fds_) close_abortive(fd);
}

long ConnectionSet::drain() {
  long total = 0;
  char buf[256];
  for (int fd : worker_fds_) {
    for (;;) {
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) {
        total += r;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      break;  // EAGAIN: empty; 0 or another error shows up in the next run
    }
  }
  return total;
}

}  // namespace shardloop::bench::storm
