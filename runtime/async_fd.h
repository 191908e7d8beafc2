// AsyncFd: a non-blocking fd registered with its worker's poller, with awaitable I/O.
//
//   auto fd = AsyncFd::adopt(raw_fd, AsyncFd::Kind::kSocket);   // on a worker
//   auto n = co_await (*fd)->read_some(buf);      // absl::StatusOr<size_t>, 0 at end of stream
//   absl::Status s = co_await (*fd)->write_all(data);
//
// Readiness model: the fd is registered once, edge-triggered, for read and write. Each operation
// tries its syscall first and suspends only on EAGAIN; the worker's event dispatch then retries
// it (on_io) and resumes the coroutine with a final result, so a coroutine is never woken just
// to find EAGAIN again. The object caches "known not readable/writable" after EAGAIN or a short
// read, which saves the EAGAIN syscall that would otherwise precede most waits (safe with
// edge-triggering: any byte that arrives later raises a new edge).
//
// At most one reader and one writer may wait at a time. close() (or destruction) cancels
// waiting operations with ECANCELED and deregisters before closing, so the fd is never closed
// while in the poller's interest list.
//
// Thread-safety: owner worker only (the worker that adopted it); not movable, because the
// poller's token points at it.
#pragma once

#include <sys/types.h>

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/io_handle.h"
#include "runtime/token.h"

namespace shardloop {

class Worker;

class AsyncFd final : public IoHandle {
 public:
  enum class Kind {
    kSocket,  // send(MSG_NOSIGNAL)/recv: a vanished peer gives EPIPE, never SIGPIPE
    kFile,    // read/write (pipes, eventfds)
  };

  // Takes ownership of `fd` (set non-blocking here) and registers it with the current worker.
  // On failure the fd is closed.
  static absl::StatusOr<std::unique_ptr<AsyncFd>> adopt(int fd, Kind kind);
  ~AsyncFd();
  AsyncFd(const AsyncFd&) = delete;
  AsyncFd& operator=(const AsyncFd&) = delete;

  int fd() const { return fd_; }
  bool closed() const { return fd_ < 0; }
  Worker* worker() const { return worker_; }

  class ReadAwaiter;
  class WriteAwaiter;
  class ReadinessAwaiter;

  // Reads what is available, at most buf.size() bytes; 0 means end of stream.
  ReadAwaiter read_some(absl::Span<char> buf);
  // Writes all of `data`, suspending while the kernel buffer is full.
  WriteAwaiter write_all(absl::Span<const char> data);
  // Resumes at the next readiness edge for reading (or right away if not known to be
  // unreadable). Spurious resumptions are possible; for accept loops and similar.
  ReadinessAwaiter readable();
  ReadinessAwaiter writable();

  // Cancels waiters (ECANCELED), deregisters and closes. Idempotent.
  void close();
  // Deregisters and returns the fd without closing it (waiters are cancelled).
  int release();

  void on_io(uint32_t events) override;

 private:
  AsyncFd(int fd, Kind kind, Worker* worker) : fd_(fd), kind_(kind), worker_(worker) {}

  // One attempt at a pending operation. Returns true when it completed (result stored).
  struct ReadOp {
    char* buf;
    size_t len;
    ssize_t result = 0;  // bytes, or -errno
    std::coroutine_handle<> waiter;
  };
  struct WriteOp {
    const char* data;
    size_t len;
    size_t done = 0;
    int error = 0;
    std::coroutine_handle<> waiter;
  };
  bool try_read(ReadOp& op);
  bool try_write(WriteOp& op);
  void cancel_waiters();

  int fd_;
  Kind kind_;
  Worker* worker_;
  Token token_;
  bool maybe_readable_ = true;
  bool maybe_writable_ = true;
  ReadOp* reader_ = nullptr;
  WriteOp* writer_ = nullptr;
  std::coroutine_handle<> read_ready_waiter_;
  std::coroutine_handle<> write_ready_waiter_;

 public:
  class ReadAwaiter {
   public:
    ReadAwaiter(AsyncFd* fd, absl::Span<char> buf) : fd_(fd), op_{buf.data(), buf.size(), 0, {}} {}
    bool await_ready() {
      if (fd_->closed()) {
        op_.result = -EBADF;
        return true;
      }
      return fd_->try_read(op_);
    }
    void await_suspend(std::coroutine_handle<> h) {
      op_.waiter = h;
      fd_->reader_ = &op_;
    }
    absl::StatusOr<size_t> await_resume();

   private:
    AsyncFd* fd_;
    ReadOp op_;
  };

  class WriteAwaiter {
   public:
    WriteAwaiter(AsyncFd* fd, absl::Span<const char> data)
        : fd_(fd), op_{data.data(), data.size(), 0, 0, {}} {}
    bool await_ready() {
      if (fd_->closed()) {
        op_.error = EBADF;
        return true;
      }
      return fd_->try_write(op_);
    }
    void await_suspend(std::coroutine_handle<> h) {
      op_.waiter = h;
      fd_->writer_ = &op_;
    }
    absl::Status await_resume();

   private:
    AsyncFd* fd_;
    WriteOp op_;
  };

  class ReadinessAwaiter {
   public:
    ReadinessAwaiter(AsyncFd* fd, bool write) : fd_(fd), write_(write) {}
    bool await_ready() const {
      return fd_->closed() || (write_ ? fd_->maybe_writable_ : fd_->maybe_readable_);
    }
    void await_suspend(std::coroutine_handle<> h) {
      (write_ ? fd_->write_ready_waiter_ : fd_->read_ready_waiter_) = h;
    }
    void await_resume() const {}

   private:
    AsyncFd* fd_;
    bool write_;
  };

  // Callers that learn an fd is drained by other means (accept4 returning EAGAIN) say so, so
  // readable() waits for the next edge.
  void mark_unreadable() { maybe_readable_ = false; }
  void mark_unwritable() { maybe_writable_ = false; }
};

}  // namespace shardloop
