// AsyncFd: a non-blocking fd owned by one worker, with awaitable I/O that works the same on
// every backend.
//
//   AsyncFd::Ptr fd = *AsyncFd::adopt(socket_fd, AsyncFd::Kind::kStream);   // on a worker
//   absl::StatusOr<size_t> n = co_await fd->read_some(buf);   // 0 at end of stream
//   absl::Status s = co_await fd->write_all(data);
//
// Two ways to drive the fd, chosen at adopt() from the worker's backend:
//
// - Readiness (epoll; and io_uring for Kind::kFile). The fd is registered once, edge-triggered,
//   for read and write. An operation tries its syscall first and suspends only on EAGAIN; the
//   worker's dispatch retries it (on_io) and resumes the coroutine with a final result, so a
//   coroutine never wakes just to find EAGAIN again. "Known not readable/writable" is cached
//   after EAGAIN or a short read, saving the EAGAIN syscall before most waits.
// - Completion (io_uring, for kStream and kListener). A stream keeps one multishot receive
//   armed into the worker's provided-buffer ring; received chunks queue here (at most
//   kMaxQueuedChunks, beyond which the receive is cancelled until the reader catches up) and
//   read_some() copies out of them, returning each buffer to the ring once consumed. A listener
//   keeps a multishot accept armed. Nothing is submitted directly: the worker's next poll submits
//   everything in one system call.
//
// Writes are buffered in both modes: bytes the kernel does not take at once wait in a WriteQueue
// (owned memory, so io_uring never reads a caller's buffer) and go out as one writev/sendmsg of
// up to kMaxIov blocks whenever the socket is writable (epoll) or the previous send completed
// (io_uring). write() suspends only above the high-water mark: that is the backpressure.
//
// At most one reader (or acceptor) and one writer may wait at a time. close() cancels waiting
// operations with ECANCELED at once and drops queued output (flush() first for an orderly
// close). The fd itself is closed, and its token released, only after the last completion for it
// has arrived, so a late completion can never reach a handle that reuses the slot (the
// generation check would drop it anyway). An AsyncFd::Ptr may be destroyed at any time: with
// completions in flight the object lingers on its worker until they arrive.
//
// A stream can move to another worker with migrate_to(), together with the root task waiting
// to read it (async_fd_migration.cc has the handoff, step by step).
//
// Thread-safety: owner worker only (the worker that adopted it, or the one it migrated to;
// the handoff goes through the target's inbox, whose mutex orders everything the old owner did
// before everything the new one does).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/io_handle.h"
#include "runtime/task.h"
#include "runtime/token.h"
#include "runtime/wake_affinity.h"
#include "runtime/write_queue.h"

namespace shardloop {

class CompletionIo;
class Worker;

class AsyncFd final : public IoHandle {
 public:
  enum class Kind {
    kStream,    // connected socket: recv/send (MSG_NOSIGNAL: a vanished peer is EPIPE, not SIGPIPE)
    kListener,  // listening socket: accept()
    kFile,      // anything else (pipes, eventfds, a connecting socket): read/write, readiness
  };
  // Stream receives queued beyond this many chunks pause the multishot receive (io_uring), so a
  // peer that sends faster than the application reads cannot drain the shared buffer ring.
  static constexpr size_t kMaxQueuedChunks = 16;

  struct Deleter {
    void operator()(AsyncFd* fd) const;
  };
  using Ptr = std::unique_ptr<AsyncFd, Deleter>;

  // Takes ownership of `fd` and registers it with the current worker. Sockets must already be
  // non-blocking (SOCK_NONBLOCK); kFile fds are made so here. On failure the fd is closed.
  static absl::StatusOr<Ptr> adopt(int fd, Kind kind);

  int fd() const { return fd_; }
  bool closed() const { return fd_ < 0; }
  Kind kind() const { return kind_; }
  Worker* worker() const { return worker_; }
  bool uses_completions() const { return cio_ != nullptr; }

  class ReadAwaiter;
  class WriteAwaiter;
  class AcceptAwaiter;
  class ReadinessAwaiter;

  // Reads what is available, at most buf.size() bytes; 0 means end of stream.
  ReadAwaiter read_some(absl::Span<char> buf);
  class ReadChunkAwaiter;
  // Zero-copy read: the next bytes received, as a view that stays valid until the caller's next
  // co_await (or next read on this fd). On epoll the bytes land in the worker's scratch buffer,
  // on io_uring the view points into the provided buffer itself, which goes back to the ring at
  // the next read. An empty view means end of stream. An idle connection that reads this way
  // holds no receive buffer of its own.
  ReadChunkAwaiter read_chunk();
  // Buffered write: hands `data` to the kernel as far as it takes it and queues the rest (the
  // caller's bytes are copied; its buffer is free as soon as the co_await returns). Suspends
  // only while more than the high-water mark is queued, until the queue drains below the
  // low-water mark (backpressure). Fails with the error of an earlier write that failed.
  WriteAwaiter write(absl::Span<const char> data);
  // write(), then waits until the kernel has taken every queued byte.
  WriteAwaiter write_all(absl::Span<const char> data);
  // Waits until the kernel has taken every queued byte.
  WriteAwaiter flush();
  size_t queued_write_bytes() const { return write_queue_.size(); }
  // Backpressure thresholds for write(); high >= low.
  void set_write_watermarks(size_t high, size_t low) {
    write_high_water_ = high;
    write_low_water_ = low < high ? low : high;
  }
  // kListener: the next accepted connection, as a non-blocking close-on-exec fd, or the errno
  // that accepting failed with (EMFILE, ECANCELED once the listener is closed, ...).
  struct AcceptResult {
    int fd = -1;
    int error = 0;
    bool ok() const { return error == 0; }
  };
  AcceptAwaiter accept();
  // kFile only: resumes at the next readiness edge (or at once if not known to be unready).
  // Spurious resumptions are possible.
  ReadinessAwaiter readable();
  ReadinessAwaiter writable();

  // Resumes a waiting reader or acceptor (`reads`) and/or writer (`writes`) with `err` (e.g.
  // ETIMEDOUT) without closing. Completion-mode receives and queued output are unaffected.
  void interrupt_waiters(int err, bool reads, bool writes);
  // From now on a read that finds nothing to return fails with `err` instead of waiting (0 turns
  // this off). Reads of data already received still succeed. Used to drain idle connections.
  void fail_blocking_reads(int err) { fail_blocking_reads_ = err; }

  // Cancels waiters, deregisters and (once nothing is in flight) closes. Idempotent.
  void close();
  // kFile only: deregisters and returns the fd without closing it (waiters are cancelled).
  int release();

  // What a migration calls back, so that state kept beside the fd (timers, trackers) can move.
  struct MigrationHooks {
    // On the old owner, just before the handoff: stop using this worker's timers and lists.
    absl::AnyInvocable<void()> departure;
    // On the target, once the fd is registered there, before the waiting reader can resume.
    absl::AnyInvocable<void()> arrival;
    // On the old owner, when the move is given up (the fd closed, the read interrupted or
    // cancelled before the move began, or the waiting task has no root).
    absl::AnyInvocable<void(absl::Status)> abandoned;
  };
  // Moves this stream to `target` together with the root task whose coroutine waits to read it
  // (its whole coroutine chain, which resumes on `target`). Starts at once if a read is waiting
  // and no write is; otherwise when the next read suspends. Stream fds only; fails (with no
  // hook called) if the fd is closed, already moving, or `target` is its owner or polls with
  // another backend. The task must keep nothing else that belongs to its worker across that
  // read (other fds, timers, pointers to worker-local state).
  absl::Status migrate_to(Worker& target, MigrationHooks hooks);
  // True from migrate_to() until the move is over (on the target) or given up.
  bool migrating() const { return migration_ != nullptr; }
  // Wake affinity (adaptive mode, wake_affinity.h): from now on, when this stream's reads keep
  // waking the same idle worker, `move` is called with that worker to move the stream there
  // (migrate_to, with whatever hooks the state beside the fd needs). Opting in promises what
  // migrate_to asks of the task that reads this stream, for every read from now on. Streams
  // only.
  // Owner only.
  void follow_wakes(WakeFollower::Move move);

  void on_io(const PollEvent& event) override;

  struct ReadOp {
    char* buf;  // nullptr: a read_chunk(), which returns a view in `view`
    size_t len;
    ssize_t result;  // bytes, or -errno
    std::coroutine_handle<> waiter;
    const char* view = nullptr;
    bool yield = false;  // completed, but the worker's budget is spent: suspend and re-queue
    internal::RootPromise* root = nullptr;  // the waiting coroutine's root (migration moves it)
  };
  struct WriteOp {
    enum class Until { kBelowHighWater, kFlushed };
    const char* data;
    size_t len;
    Until until;
    int error;
    std::coroutine_handle<> waiter;
    bool yield = false;
  };
  struct AcceptOp {
    int result;  // fd, or -errno
    std::coroutine_handle<> waiter;
    bool yield = false;
  };

  class ReadAwaiter {
   public:
    ReadAwaiter(AsyncFd* fd, absl::Span<char> buf) : fd_(fd), op_{buf.data(), buf.size(), 0, {}} {}
    bool await_ready() { return fd_->ready_or_yield(fd_->start_read(op_), op_.yield); }
    template <typename P>
    void await_suspend(std::coroutine_handle<P> h) {
      if (op_.yield) return fd_->resume(h);
      op_.root = internal::root_of(h);
      fd_->wait_to_read(op_, h);  // may hand the coroutine to another worker: the last step
    }
    absl::StatusOr<size_t> await_resume();

   private:
    AsyncFd* fd_;
    ReadOp op_;
  };

  class ReadChunkAwaiter {
   public:
    explicit ReadChunkAwaiter(AsyncFd* fd) : fd_(fd), op_{nullptr, 0, 0, {}, nullptr} {}
    bool await_ready() { return fd_->ready_or_yield(fd_->start_read(op_), op_.yield); }
    template <typename P>
    void await_suspend(std::coroutine_handle<P> h) {
      if (op_.yield) return fd_->resume(h);
      op_.root = internal::root_of(h);
      fd_->wait_to_read(op_, h);  // may hand the coroutine to another worker: the last step
    }
    absl::StatusOr<absl::Span<const char>> await_resume();

   private:
    AsyncFd* fd_;
    ReadOp op_;
  };

  class WriteAwaiter {
   public:
    WriteAwaiter(AsyncFd* fd, absl::Span<const char> data, WriteOp::Until until)
        : fd_(fd), op_{data.data(), data.size(), until, 0, {}} {}
    bool await_ready() { return fd_->ready_or_yield(fd_->start_write(op_), op_.yield); }
    void await_suspend(std::coroutine_handle<> h) {
      if (op_.yield) return fd_->resume(h);
      op_.waiter = h;
      fd_->writer_ = &op_;
    }
    absl::Status await_resume();

   private:
    AsyncFd* fd_;
    WriteOp op_;
  };

  class AcceptAwaiter {
   public:
    explicit AcceptAwaiter(AsyncFd* fd) : fd_(fd), op_{0, {}} {}
    bool await_ready() { return fd_->ready_or_yield(fd_->start_accept(op_), op_.yield); }
    void await_suspend(std::coroutine_handle<> h) {
      if (op_.yield) return fd_->resume(h);
      op_.waiter = h;
      fd_->acceptor_ = &op_;
    }
    AcceptResult await_resume() const {
      return op_.result >= 0 ? AcceptResult{op_.result, 0} : AcceptResult{-1, -op_.result};
    }

   private:
    AsyncFd* fd_;
    AcceptOp op_;
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

  // For callers that learn by other means that the fd is drained (or full), so readable()
  // (writable()) waits for the next edge.
  void mark_unreadable() { maybe_readable_ = false; }
  void mark_unwritable() { maybe_writable_ = false; }

 private:
  friend class Worker;  // reclaims lingering handles at teardown
  AsyncFd(int fd, Kind kind, Worker* worker, CompletionIo* cio)
      : fd_(fd), raw_fd_(fd), kind_(kind), worker_(worker), cio_(cio) {}
  ~AsyncFd();

  // An operation that completed at once still suspends (with its result) once the worker's
  // cooperative budget is spent: `yield` tells await_suspend to re-queue instead of waiting.
  bool ready_or_yield(bool completed, bool& yield);
  // Each returns true when the operation completed at once (result stored in the op).
  bool start_read(ReadOp& op);
  bool start_write(WriteOp& op);
  bool start_accept(AcceptOp& op);

  // Writes (both modes): push queued bytes to the kernel; resume a writer whose wait is over.
  void flush_queue();
  bool write_done(const WriteOp& op, bool resuming) const;
  void wake_writer();

  // Readiness mode.
  bool try_read(ReadOp& op);
  bool try_read_chunk(ReadOp& op);
  bool try_accept(AcceptOp& op);
  void on_readiness(uint32_t events);

  // Completion mode.
  void on_completion(const PollEvent& event);
  void on_recv(const PollEvent& event, bool final);
  void on_send(const PollEvent& event);
  void on_accept(const PollEvent& event, bool final);
  size_t queued_chunks() const { return chunks_.size() - chunk_head_; }
  size_t take_chunks(char* dst, size_t len);
  void lend_chunk(ReadOp& op);
  void return_lent_buffer();
  bool read_from_queue(ReadOp& op);
  void update_recv();
  bool submit(uint8_t op);
  void finish_close();
  // Resumes every waiting operation with ECANCELED (close and release).
  void cancel_all_waiters();
  // Migration (async_fd_migration.cc).
  struct Migration {
    Worker* target;
    MigrationHooks hooks;
    bool quiescing = false;  // started: no new operation is submitted, none resumes the reader
  };
  struct MigrationHandoff;
  void wait_to_read(ReadOp& op, std::coroutine_handle<> h);
  // Wake affinity: a read returned data / a read waits (wake_affinity.h).
  void note_read_returned();
  void follow_wakes_on_wait();
  void schedule_migration_start();
  void maybe_start_migration();
  bool quiescing() const;
  void finish_migration();
  void abandon_migration(absl::Status why);
  void arrive(Worker* target, internal::RootPromise* root, absl::AnyInvocable<void()> arrival,
              bool completion);
  void discard_in_transit(Worker* target, internal::RootPromise* root);
  bool read_carried(ReadOp& op);

  void resume(std::coroutine_handle<> h);

  int fd_;      // -1 once close() was called (what users see)
  int raw_fd_;  // the descriptor, open until the last completion for it has arrived
  Kind kind_;
  Worker* worker_;
  CompletionIo* cio_;  // non-null in completion mode
  Token token_;

  int fail_blocking_reads_ = 0;
  std::unique_ptr<Migration> migration_;
  std::unique_ptr<WakeFollower> follower_;  // follow_wakes(); null: never moves by itself
  // Input received on a previous worker, owned: it is read before anything received since.
  std::string carried_;
  size_t carried_off_ = 0;
  ReadOp* reader_ = nullptr;
  WriteOp* writer_ = nullptr;
  AcceptOp* acceptor_ = nullptr;

  // Readiness mode.
  bool maybe_readable_ = true;
  bool maybe_writable_ = true;
  bool peer_hung_up_ = false;  // a hang-up was reported: short reads no longer imply "drained"
  std::coroutine_handle<> read_ready_waiter_;
  std::coroutine_handle<> write_ready_waiter_;

  // Writes.
  static constexpr int kMaxIov = 16;
  WriteQueue write_queue_;
  int write_error_ = 0;  // sticky: the first error a flush met
  size_t write_high_water_ = 256 * 1024;
  size_t write_low_water_ = 64 * 1024;
  iovec iov_[kMaxIov];
  msghdr send_msg_{};  // completion mode: the sendmsg in flight points here

  // Completion mode.
  struct Chunk {
    uint16_t id;
    uint32_t length;
    uint32_t offset;
  };
  std::vector<Chunk> chunks_;
  size_t chunk_head_ = 0;
  int lent_buffer_ = -1;  // buffer id a read_chunk() view points into; recycled at the next read
  int recv_end_ = 0;      // 0: open; 1: end of stream; < 0: -errno (reported once the queue drains)
  bool recv_armed_ = false;
  bool recv_cancelling_ = false;
  bool starved_ = false;  // the last receive hit ENOBUFS; waiting for kBuffersAvailable
  bool send_inflight_ = false;
  bool accept_armed_ = false;
  std::vector<int> accepted_;
  int accept_error_ = 0;
  unsigned inflight_ = 0;  // submitted operations whose final completion has not arrived
  bool closing_ = false;
  bool lingering_ = false;
};

}  // namespace shardloop
