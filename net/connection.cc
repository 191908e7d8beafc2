#include "net/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>

namespace shardloop::net {

void configure_tcp_socket(int fd) {
  int one = 1;
  // Fails harmlessly on non-TCP sockets (AF_UNIX), which have no Nagle to disable.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

absl::Status Connection::shutdown_write() {
  if (!valid()) return absl::FailedPreconditionError("shutdown_write on a closed connection");
  if (::shutdown(fd_->fd(), SHUT_WR) != 0) return absl::ErrnoToStatus(errno, "shutdown(SHUT_WR)");
  return absl::OkStatus();
}

namespace {
template <typename Fn>
absl::StatusOr<Address> query_name(int fd, Fn fn, const char* what) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (fn(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return absl::ErrnoToStatus(errno, what);
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}
}  // namespace

absl::StatusOr<Address> Connection::peer_address() const {
  return query_name(fd(), ::getpeername, "getpeername");
}

absl::StatusOr<Address> Connection::local_address() const {
  return query_name(fd(), ::getsockname, "getsockname");
}

}  // namespace shardloop::net
