#include "net/dialer.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "runtime/errno_status.h"

namespace shardloop::net {

Task<absl::StatusOr<Connection>> dial(Address address) {
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) co_return errno_status(errno, "socket");
  configure_tcp_socket(fd);
  bool in_progress = false;
  if (::connect(fd, address.sockaddr_ptr(), address.length()) != 0) {
    if (errno != EINPROGRESS) {
      int err = errno;
      ::close(fd);
      co_return errno_status(err, "connect to " + address.to_string());
    }
    in_progress = true;
  }
  if (in_progress) {
    // Writability (or an error/hang-up) is how a non-blocking connect reports completion; wait
    // for it through readiness, then hand the connected socket over as a stream.
    auto connecting = AsyncFd::adopt(fd, AsyncFd::Kind::kFile);
    if (!connecting.ok()) co_return connecting.status();
    (*connecting)->mark_unwritable();
    co_await (*connecting)->writable();
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) co_return errno_status(err, "connect to " + address.to_string());
    fd = (*connecting)->release();
  }
  auto stream = AsyncFd::adopt(fd, AsyncFd::Kind::kStream);
  if (!stream.ok()) co_return stream.status();
  co_return Connection(std::move(*stream));
}

}  // namespace shardloop::net
