#include "runtime/async_fd.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>
#include <utility>

#include "runtime/completion_io.h"
#include "runtime/errno_status.h"
#include "runtime/worker.h"

namespace shardloop {

// --- lifetime -----------------------------------------------------------------------------

absl::StatusOr<AsyncFd::Ptr> AsyncFd::adopt(int fd, Kind kind) {
  Worker* worker = Worker::current();
  assert(worker != nullptr && "AsyncFd::adopt outside a worker");
  if (kind == Kind::kFile) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
      int err = errno;
      ::close(fd);
      return errno_status(err, "fcntl(O_NONBLOCK)");
    }
  }
  CompletionIo* cio = kind == Kind::kFile ? nullptr : worker->completion_io();
  Ptr afd(new AsyncFd(fd, kind, worker, cio));
  if (cio != nullptr) {
    afd->token_ = worker->register_handle(afd.get());
    // A stream starts receiving at once, so the first request is already here when read.
    if (kind == Kind::kStream) afd->update_recv();
    return afd;
  }
  auto token = worker->register_fd(fd, afd.get(), io_events::kReadable | io_events::kWritable);
  if (!token.ok()) {
    ::close(fd);
    afd->fd_ = afd->raw_fd_ = -1;
    return token.status();
  }
  afd->token_ = *token;
  return afd;
}

void AsyncFd::Deleter::operator()(AsyncFd* fd) const {
  fd->close();
  if (fd->raw_fd_ < 0) {
    delete fd;
  } else {
    // Completions are still in flight; finish_close() deletes it when the last one arrives.
    fd->lingering_ = true;
    fd->worker_->add_lingering(fd);
  }
}

AsyncFd::~AsyncFd() {
  // Only reached with raw_fd_ open when a stopping worker reclaims a lingering handle.
  if (raw_fd_ >= 0) ::close(raw_fd_);
}

void AsyncFd::resume(std::coroutine_handle<> h) { worker_->schedule(h); }

void AsyncFd::close() {
  if (closing_ || raw_fd_ < 0) return;
  worker_->assert_owner();
  if (migration_ != nullptr) abandon_migration(absl::CancelledError("the fd was closed"));
  closing_ = true;
  fd_ = -1;
  cancel_all_waiters();
  if (cio_ == nullptr) {
    write_queue_.clear();
    worker_->deregister_fd(raw_fd_, token_);
    ::close(std::exchange(raw_fd_, -1));
    return;
  }
  // Completion mode: everything in flight is cancelled; the last completion closes the fd. The
  // write queue stays allocated until then, since an in-flight sendmsg may still read it.
  if (recv_armed_ && !recv_cancelling_) (void)cio_->cancel(with_op(token_.encode(), io_ops::kRecv));
  if (accept_armed_) (void)cio_->cancel(with_op(token_.encode(), io_ops::kAccept));
  if (send_inflight_) (void)cio_->cancel(with_op(token_.encode(), io_ops::kSend));
  return_lent_buffer();
  for (size_t i = chunk_head_; i < chunks_.size(); ++i) cio_->recycle_buffer(chunks_[i].id);
  chunks_.clear();
  chunk_head_ = 0;
  for (int fd : accepted_) ::close(fd);
  accepted_.clear();
  if (inflight_ == 0) finish_close();
}

void AsyncFd::finish_close() {
  worker_->release_handle(token_);
  ::close(std::exchange(raw_fd_, -1));
  if (lingering_) {
    worker_->remove_lingering(this);
    delete this;
  }
}

void AsyncFd::cancel_all_waiters() {
  interrupt_waiters(ECANCELED, /*reads=*/true, /*writes=*/true);
  if (read_ready_waiter_) resume(std::exchange(read_ready_waiter_, nullptr));
  if (write_ready_waiter_) resume(std::exchange(write_ready_waiter_, nullptr));
}

int AsyncFd::release() {
  assert(cio_ == nullptr && "release() is for readiness-mode fds");
  if (fd_ < 0) return -1;
  worker_->assert_owner();
  int fd = raw_fd_;
  // close() without the ::close: cancel waiters and deregister.
  raw_fd_ = -1;
  fd_ = -1;
  closing_ = true;
  cancel_all_waiters();
  worker_->deregister_fd(fd, token_);
  return fd;
}

AsyncFd::ReadAwaiter AsyncFd::read_some(absl::Span<char> buf) { return ReadAwaiter(this, buf); }
AsyncFd::ReadChunkAwaiter AsyncFd::read_chunk() { return ReadChunkAwaiter(this); }
AsyncFd::WriteAwaiter AsyncFd::write(absl::Span<const char> data) {
  return WriteAwaiter(this, data, WriteOp::Until::kBelowHighWater);
}
AsyncFd::WriteAwaiter AsyncFd::write_all(absl::Span<const char> data) {
  return WriteAwaiter(this, data, WriteOp::Until::kFlushed);
}
AsyncFd::WriteAwaiter AsyncFd::flush() { return WriteAwaiter(this, {}, WriteOp::Until::kFlushed); }
AsyncFd::AcceptAwaiter AsyncFd::accept() { return AcceptAwaiter(this); }
AsyncFd::ReadinessAwaiter AsyncFd::readable() {
  assert(cio_ == nullptr && "readable() is for readiness-mode fds");
  return ReadinessAwaiter(this, false);
}
AsyncFd::ReadinessAwaiter AsyncFd::writable() {
  assert(cio_ == nullptr && "writable() is for readiness-mode fds");
  return ReadinessAwaiter(this, true);
}

void AsyncFd::on_io(const PollEvent& event) {
  if (cio_ == nullptr) {
    on_readiness(event.events);
  } else {
    on_completion(event);  // may delete this
  }
}

// --- starting operations --------------------------------------------------------------------

bool AsyncFd::ready_or_yield(bool completed, bool& yield) {
  if (!completed) return false;
  yield = worker_->spend_budget();
  return !yield;
}

bool AsyncFd::start_read(ReadOp& op) {
  if (closed()) {
    op.result = -EBADF;
    return true;
  }
  if (read_carried(op)) return true;
  bool done;
  if (cio_ == nullptr) {
    done = try_read(op);
  } else {
    return_lent_buffer();
    done = read_from_queue(op);
    if (!done) update_recv();
  }
  if (!done && fail_blocking_reads_ != 0) {
    op.result = -fail_blocking_reads_;
    return true;
  }
  return done;
}

void AsyncFd::interrupt_waiters(int err, bool reads, bool writes) {
  if (reads && reader_ != nullptr && migration_ != nullptr) {
    abandon_migration(absl::CancelledError("the read waiting to migrate was interrupted"));
  }
  if (reads && reader_ != nullptr) {
    reader_->result = -err;
    resume(std::exchange(reader_, nullptr)->waiter);
  }
  if (reads && acceptor_ != nullptr) {
    acceptor_->result = -err;
    resume(std::exchange(acceptor_, nullptr)->waiter);
  }
  if (writes && writer_ != nullptr) {
    writer_->error = err;
    resume(std::exchange(writer_, nullptr)->waiter);
  }
}

bool AsyncFd::start_write(WriteOp& op) {
  if (closed()) {
    op.error = EBADF;
    return true;
  }
  if (op.len > 0 && write_error_ == 0) {
    size_t sent = 0;
    if (cio_ == nullptr && write_queue_.empty() && maybe_writable_) {
      // Fast path: nothing queued, so send straight from the caller's buffer.
      for (;;) {
        ssize_t n = kind_ == Kind::kStream
                        ? ::send(raw_fd_, op.data + sent, op.len - sent, MSG_NOSIGNAL)
                        : ::write(raw_fd_, op.data + sent, op.len - sent);
        if (n > 0) {
          sent += static_cast<size_t>(n);
          if (sent == op.len) break;
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          maybe_writable_ = false;
        } else {
          write_error_ = n < 0 ? errno : EIO;
        }
        break;
      }
    }
    if (sent < op.len && write_error_ == 0) {
      write_queue_.append(absl::MakeConstSpan(op.data + sent, op.len - sent));
      flush_queue();
    }
  }
  const bool done = write_done(op, /*resuming=*/false);
  if (done && write_error_ != 0) op.error = write_error_;
  return done;
}

// Whether a writer may go on. Entering, a buffered write waits only above the high-water mark;
// once waiting, it resumes below the low-water mark, so it does not wake for every send.
bool AsyncFd::write_done(const WriteOp& op, bool resuming) const {
  if (write_error_ != 0 || closing_) return true;
  if (op.until == WriteOp::Until::kFlushed) return write_queue_.empty();
  return write_queue_.size() <= (resuming ? write_low_water_ : write_high_water_);
}

void AsyncFd::wake_writer() {
  if (writer_ != nullptr && write_done(*writer_, /*resuming=*/true)) {
    if (write_error_ != 0) writer_->error = write_error_;
    resume(std::exchange(writer_, nullptr)->waiter);
  }
}

void AsyncFd::flush_queue() {
  // While quiescing for a migration nothing new is submitted; the target flushes.
  if (write_queue_.empty() || write_error_ != 0 || closing_ || quiescing()) return;
  if (cio_ != nullptr) {
    if (send_inflight_) return;  // the completion of the one in flight sends the rest
    send_msg_ = msghdr{};
    send_msg_.msg_iov = iov_;
    send_msg_.msg_iovlen = static_cast<size_t>(write_queue_.gather(iov_, kMaxIov));
    if (!submit(io_ops::kSend)) {
      write_error_ = ENOMEM;
      write_queue_.clear();
    }
    return;
  }
  while (!write_queue_.empty() && maybe_writable_) {
    int count = write_queue_.gather(iov_, kMaxIov);
    ssize_t n;
    if (kind_ == Kind::kStream) {
      msghdr msg{};
      msg.msg_iov = iov_;
      msg.msg_iovlen = static_cast<size_t>(count);
      n = ::sendmsg(raw_fd_, &msg, MSG_NOSIGNAL);
    } else {
      n = ::writev(raw_fd_, iov_, count);
    }
    if (n > 0) {
      write_queue_.consume(static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      maybe_writable_ = false;
    } else {
      write_error_ = n < 0 ? errno : EIO;
      write_queue_.clear();
    }
  }
}

bool AsyncFd::start_accept(AcceptOp& op) {
  if (closed()) {
    op.result = -EBADF;
    return true;
  }
  if (cio_ == nullptr) return try_accept(op);
  if (!accepted_.empty()) {
    op.result = accepted_.front();
    accepted_.erase(accepted_.begin());
    return true;
  }
  if (accept_error_ != 0) {
    op.result = std::exchange(accept_error_, 0);
    return true;
  }
  if (!accept_armed_ && !submit(io_ops::kAccept)) {
    op.result = -ENOMEM;
    return true;
  }
  return false;
}

// --- readiness mode -------------------------------------------------------------------------

bool AsyncFd::try_read(ReadOp& op) {
  if (!maybe_readable_) return false;
  if (op.buf == nullptr) {
    // read_chunk(): into the worker's scratch buffer, which the view then points at.
    absl::Span<char> scratch = worker_->scratch();
    op.view = scratch.data();
    ReadOp inner{scratch.data(), scratch.size(), 0, {}, nullptr};
    if (!try_read(inner)) return false;
    op.result = inner.result;
    return true;
  }
  for (;;) {
    ssize_t n = kind_ == Kind::kStream ? ::recv(raw_fd_, op.buf, op.len, 0)
                                       : ::read(raw_fd_, op.buf, op.len);
    if (n >= 0) {
      // A short read drained the socket; the next byte to arrive raises a new edge. Not so for a
      // FIN that had already arrived (reported with the same edge): after a hang-up, read on
      // until the syscall itself says end of stream or EAGAIN.
      if (n > 0 && static_cast<size_t>(n) < op.len && !peer_hung_up_) maybe_readable_ = false;
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

bool AsyncFd::try_accept(AcceptOp& op) {
  if (!maybe_readable_) return false;
  for (;;) {
    int fd = ::accept4(raw_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      op.result = fd;
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

void AsyncFd::on_readiness(uint32_t events) {
  // A hang-up or error also completes waiting writes: the next send reports it.
  if (events & (io_events::kWritable | io_events::kHangup | io_events::kError)) {
    maybe_writable_ = true;
    flush_queue();
    wake_writer();
    if (write_ready_waiter_) resume(std::exchange(write_ready_waiter_, nullptr));
  }
  if (!(events & (io_events::kReadable | io_events::kHangup | io_events::kError))) return;
  maybe_readable_ = true;
  if (events & (io_events::kHangup | io_events::kError)) peer_hung_up_ = true;
  if (acceptor_ != nullptr && try_accept(*acceptor_))
    resume(std::exchange(acceptor_, nullptr)->waiter);
  if (read_ready_waiter_) resume(std::exchange(read_ready_waiter_, nullptr));
  if (reader_ != nullptr && try_read(*reader_)) {
    ReadOp* op = std::exchange(reader_, nullptr);
    if (op->buf != nullptr) {
      resume(op->waiter);
    } else {
      // A read_chunk() view points into the worker's scratch buffer, which the next event of
      // this batch may overwrite: the reader runs now, before anything else. This must be the
      // last thing done here, since the reader may close and free this AsyncFd.
      op->waiter.resume();
    }
  }
}

// --- results --------------------------------------------------------------------------------

absl::StatusOr<size_t> AsyncFd::ReadAwaiter::await_resume() {
  if (op_.result > 0) fd_->note_read_returned();
  if (op_.result >= 0) return static_cast<size_t>(op_.result);
  int err = static_cast<int>(-op_.result);
  if (err == ECANCELED) return absl::CancelledError("read cancelled: the fd was closed");
  return errno_status(err, "read");
}

absl::StatusOr<absl::Span<const char>> AsyncFd::ReadChunkAwaiter::await_resume() {
  if (op_.result > 0) fd_->note_read_returned();
  if (op_.result >= 0) return absl::MakeConstSpan(op_.view, static_cast<size_t>(op_.result));
  int err = static_cast<int>(-op_.result);
  if (err == ECANCELED) return absl::CancelledError("read cancelled: the fd was closed");
  return errno_status(err, "read");
}

absl::Status AsyncFd::WriteAwaiter::await_resume() {
  if (op_.error == 0) return absl::OkStatus();
  if (op_.error == ECANCELED) return absl::CancelledError("write cancelled: the fd was closed");
  return errno_status(op_.error, "write");
}

}  // namespace shardloop
