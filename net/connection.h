// Connection: a connected stream socket owned by one worker, with awaitable I/O.
//
//   absl::StatusOr<size_t> n = co_await conn.read(absl::MakeSpan(buf));   // 0: peer finished
//   absl::Status s = co_await conn.write_all(reply);
//   conn.close();
//
// Sends use MSG_NOSIGNAL, so a peer that vanished yields an EPIPE/ECONNRESET status, never a
// SIGPIPE. A Connection is a movable handle; the socket state behind it stays in place (the
// poller's token points at it).
//
// Thread-safety: owner worker only — the worker that accepted or dialed it. Moving the handle to
// a coroutine on another worker is a bug (checked in debug builds).
#pragma once

#include <memory>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "net/address.h"
#include "runtime/async_fd.h"

namespace shardloop::net {

class Connection {
 public:
  Connection() = default;
  explicit Connection(AsyncFd::Ptr fd) : fd_(std::move(fd)) {}

  bool valid() const { return fd_ != nullptr && !fd_->closed(); }
  int fd() const { return fd_ ? fd_->fd() : -1; }
  Worker* worker() const { return fd_ ? fd_->worker() : nullptr; }

  // Reads what is available (at most buf.size() bytes); 0 at end of stream.
  AsyncFd::ReadAwaiter read(absl::Span<char> buf) { return fd_->read_some(buf); }
  // Buffered write: copies what the kernel does not take at once into the connection's write
  // queue and returns; suspends only while the queue is above its high-water mark.
  AsyncFd::WriteAwaiter write(absl::Span<const char> data) { return fd_->write(data); }
  // write(), then waits until the kernel has taken every byte.
  AsyncFd::WriteAwaiter write_all(absl::Span<const char> data) { return fd_->write_all(data); }
  // Waits until the kernel has taken every queued byte.
  AsyncFd::WriteAwaiter flush() { return fd_->flush(); }

  // Sends FIN after what was written; reading stays possible.
  absl::Status shutdown_write();
  void close() {
    if (fd_) fd_->close();
  }

  absl::StatusOr<Address> peer_address() const;
  absl::StatusOr<Address> local_address() const;

 private:
  AsyncFd::Ptr fd_;
};

// Applies the options every TCP socket of ours gets (TCP_NODELAY for request/response traffic).
void configure_tcp_socket(int fd);

}  // namespace shardloop::net
