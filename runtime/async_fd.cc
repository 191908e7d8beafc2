#include "runtime/async_fd.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>

#include "runtime/worker.h"

namespace shardloop {

absl::StatusOr<std::unique_ptr<AsyncFd>> AsyncFd::adopt(int fd, Kind kind) {
  Worker* worker = Worker::current();
  assert(worker != nullptr && "AsyncFd::adopt outside a worker");
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    int err = errno;
    ::close(fd);
    return absl::ErrnoToStatus(err, "fcntl(O_NONBLOCK)");
  }
  std::unique_ptr<AsyncFd> afd(new AsyncFd(fd, kind, worker));
  auto token = worker->register_fd(fd, afd.get(), io_events::kReadable | io_events::kWritable);
  if (!token.ok()) {
    ::close(fd);
    afd->fd_ = -1;
    return token.status();
  }
  afd->token_ = *token;
  return afd;
}

AsyncFd::~AsyncFd() { close(); }

AsyncFd::ReadAwaiter AsyncFd::read_some(absl::Span<char> buf) { return ReadAwaiter(this, buf); }
AsyncFd::WriteAwaiter AsyncFd::write_all(absl::Span<const char> data) {
  return WriteAwaiter(this, data);
}
AsyncFd::ReadinessAwaiter AsyncFd::readable() { return ReadinessAwaiter(this, false); }
AsyncFd::ReadinessAwaiter AsyncFd::writable() { return ReadinessAwaiter(this, true); }

bool AsyncFd::try_read(ReadOp& op) {
  if (!maybe_readable_) return false;
  for (;;) {
    ssize_t n = kind_ == Kind::kSocket ? ::recv(fd_, op.buf, op.len, 0) : ::read(fd_, op.buf, op.len);
    if (n >= 0) {
      // A short read drained the socket; the next byte to arrive raises a new edge.
      if (static_cast<size_t>(n) < op.len && n > 0) maybe_readable_ = false;
      op.result = n;
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      maybe_readable_ = false;
      return false;
    }
    op.result = -errno;
    return true;
  }
}

bool AsyncFd::try_write(WriteOp& op) {
  if (!maybe_writable_) return false;
  while (op.done < op.len) {
    const char* p = op.data + op.done;
    size_t left = op.len - op.done;
    ssize_t n = kind_ == Kind::kSocket ? ::send(fd_, p, left, MSG_NOSIGNAL) : ::write(fd_, p, left);
    if (n > 0) {
      op.done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      maybe_writable_ = false;
      return false;
    }
    op.error = n < 0 ? errno : EIO;
    return true;
  }
  return true;
}

void AsyncFd::on_io(uint32_t events) {
  if (events & (io_events::kReadable | io_events::kHangup | io_events::kError)) {
    maybe_readable_ = true;
    if (reader_ != nullptr && try_read(*reader_)) {
      worker_->schedule(std::exchange(reader_, nullptr)->waiter);
    }
    if (read_ready_waiter_) worker_->schedule(std::exchange(read_ready_waiter_, nullptr));
  }
  // A write to a closed or failed socket returns the error instead of EAGAIN, so a hang-up or
  // error also completes a waiting writer.
  if (events & (io_events::kWritable | io_events::kHangup | io_events::kError)) {
    maybe_writable_ = true;
    if (writer_ != nullptr && try_write(*writer_)) {
      worker_->schedule(std::exchange(writer_, nullptr)->waiter);
    }
    if (write_ready_waiter_) worker_->schedule(std::exchange(write_ready_waiter_, nullptr));
  }
}

void AsyncFd::cancel_waiters() {
  if (reader_ != nullptr) {
    reader_->result = -ECANCELED;
    worker_->schedule(std::exchange(reader_, nullptr)->waiter);
  }
  if (writer_ != nullptr) {
    writer_->error = ECANCELED;
    worker_->schedule(std::exchange(writer_, nullptr)->waiter);
  }
  if (read_ready_waiter_) worker_->schedule(std::exchange(read_ready_waiter_, nullptr));
  if (write_ready_waiter_) worker_->schedule(std::exchange(write_ready_waiter_, nullptr));
}

int AsyncFd::release() {
  if (fd_ < 0) return -1;
  worker_->assert_owner();
  cancel_waiters();
  worker_->deregister_fd(fd_, token_);
  return std::exchange(fd_, -1);
}

void AsyncFd::close() {
  int fd = release();
  if (fd >= 0) ::close(fd);
}

absl::StatusOr<size_t> AsyncFd::ReadAwaiter::await_resume() {
  if (op_.result >= 0) return static_cast<size_t>(op_.result);
  int err = static_cast<int>(-op_.result);
  if (err == ECANCELED) return absl::CancelledError("read cancelled: the fd was closed");
  return absl::ErrnoToStatus(err, "read");
}

absl::Status AsyncFd::WriteAwaiter::await_resume() {
  if (op_.error == 0) return absl::OkStatus();
  if (op_.error == ECANCELED) return absl::CancelledError("write cancelled: the fd was closed");
  return absl::ErrnoToStatus(op_.error, "write");
}

}  // namespace shardloop
