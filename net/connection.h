// Connection: a connected stream socket owned by one worker, with awaitable I/O, backpressure,
// timeouts and the closes a server needs.
//
//   absl::StatusOr<size_t> n = co_await conn.read(absl::MakeSpan(buf));   // 0: peer finished
//   absl::Status s = co_await conn.write(reply);        // buffered; waits only above high water
//   co_await conn.shutdown_write();                     // flush, then FIN; reading goes on
//   co_await conn.finish();                             // flush, then close
//   conn.abort();                                       // RST, queued output dropped
//
// Sends use MSG_NOSIGNAL, so a peer that vanished yields an EPIPE/ECONNRESET status, never a
// SIGPIPE.
//
// Timeouts (ConnectionOptions), all off by default:
// - read_timeout: a read that waits this long fails with DeadlineExceeded (the connection stays);
// - write_timeout: likewise for a write or flush held up by backpressure;
// - idle_timeout: no byte read or written for this long closes the connection;
// - set_deadline(t): at t the connection is aborted and waiting operations fail with
//   DeadlineExceeded. Servers set it per request, so a client that trickles one byte every few
//   seconds (which keeps the other timers happy) cannot hold a connection forever.
// One timer per connection is re-armed lazily (when it fires early), so requests that
// complete in time cost a couple of clock reads and no timer operations.
//
// Thread-safety: owner worker only — the worker that accepted or dialed it. The handle is
// movable within that worker.
#pragma once

#include <coroutine>
#include <cstdint>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "net/address.h"
#include "runtime/async_fd.h"
#include "runtime/offload.h"
#include "runtime/task.h"
#include "runtime/timer_queue.h"

namespace shardloop::net {

struct ConnectionOptions {
  absl::Duration read_timeout = absl::InfiniteDuration();
  absl::Duration write_timeout = absl::InfiniteDuration();
  absl::Duration idle_timeout = absl::InfiniteDuration();
  // Backpressure: write() suspends while more than `write_high_water` bytes are queued, until
  // fewer than `write_low_water` remain.
  size_t write_high_water = 256 * 1024;
  size_t write_low_water = 64 * 1024;
  // On drain, how long a read may still wait for the next request before failing. A client
  // that had a request in flight when the drain began still gets it answered; a protocol that
  // can say "closing" (HTTP's Connection: close) says so in that answer (see draining()).
  absl::Duration drain_grace = absl::Milliseconds(100);
};

class ConnectionTracker;

class Connection {
 public:
  struct State;

  Connection();
  explicit Connection(AsyncFd::Ptr fd, const ConnectionOptions& options = {});
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  bool valid() const;
  int fd() const;
  Worker* worker() const;
  size_t queued_write_bytes() const;

  template <typename Inner>
  class TimedRead;
  class WriteAwaiter;

  // Reads what is available (at most buf.size() bytes); 0 at end of stream.
  TimedRead<AsyncFd::ReadAwaiter> read(absl::Span<char> buf);
  // Zero-copy read: the next bytes received, as a view valid until the caller's next co_await
  // (an empty view at end of stream). See AsyncFd::read_chunk().
  TimedRead<AsyncFd::ReadChunkAwaiter> read_chunk();
  // Buffered write: what the kernel does not take at once is copied into the connection's write
  // queue; suspends only while the queue is above its high-water mark.
  WriteAwaiter write(absl::Span<const char> data);
  // write(), then waits until the kernel has taken every byte.
  WriteAwaiter write_all(absl::Span<const char> data);
  // Waits until the kernel has taken every queued byte.
  WriteAwaiter flush();

  // Orderly half-close: flushes, then sends FIN. Reading stays possible.
  Task<absl::Status> shutdown_write();
  // Orderly close: flushes (bounded by write_timeout), then closes.
  Task<absl::Status> finish();
  // Abortive close: the peer gets RST, queued output is dropped.
  void abort();
  // Immediate close; queued output is dropped.
  void close();

  // Total deadline (see above); InfiniteFuture() clears it.
  void set_deadline(absl::Time deadline);

  // Moves the connection, and the root task whose coroutine is waiting to read it, to `target`
  // (AsyncFd::migrate_to has the handoff). The move starts when a read waits and no write does;
  // timers, the drain tracker and the drain state move with it. `done(true)` runs on `target`
  // once the connection is there, before the reader resumes; `done(false)` runs on the owner
  // if the move is given up (the connection closed, or its read interrupted, first). Between
  // the call and `done`, nothing but the waiting task may touch the connection. Call on the
  // owner; only the task that owns the connection may be waiting on it, and it must hold
  // nothing else that belongs to its worker across the read. An error means no move was
  // started and `done` is not called.
  absl::Status migrate(Worker& target, absl::AnyInvocable<void(bool arrived)> done = nullptr);
  bool migrating() const;
  // Wake affinity (adaptive mode, runtime/wake_affinity.h): from now on the connection moves, as
  // migrate() moves it, to the idle worker its reader keeps waking (a task there that waits for
  // what this connection brings: a caller waiting for a backend's reply, a fan-in). Opting in
  // makes migrate()'s promise for every read from now on: the task reading this connection
  // holds nothing else of its worker across a read. From then on the connection may move
  // whenever that task waits to read, so code outside the task must not keep its worker: reach
  // it through its task, or by id through Server::migratable(), which finds it where it is
  // (and refuses while it moves). A channel's sends count when the reader flushes them before
  // its next read (Channel::flush). Call on the owner.
  void follow_wakes();
  // The key that names this connection's work: unique in the process, never reused, kept
  // across migrations; 0 for an empty handle. Its offloaded tasks carry it as their affinity,
  // and it is the connection's id in ConnectionTracker samples.
  uint64_t affinity() const;
  // Offloads per-request work: starts `task` as a stealable root on the connection's worker,
  // tagged with affinity() (Worker::spawn_stealable), so that an idle worker may take it. The
  // task must not touch the connection or anything else of this worker (it may run anywhere);
  // hand results back with Worker::post or submit_to. When one other worker keeps starting
  // these tasks, the rebalancer moves the connection there (steal affinity,
  // scheduler/rebalancer.h). Call on the owner.
  void spawn_offload(Task<void> task);
  // The same for work whose result the handler needs: co_await conn.offload(fn) runs `fn` as a
  // stealable root tagged with affinity() and resumes the caller here with fn's result
  // (runtime/offload.h). Same rules for `fn` as for spawn_offload's task. With GCC 12, name the
  // awaiter when `fn` captures anything with a destructor (see runtime/offload.h):
  //   auto op = conn.offload([req] { return handle(req); });
  //   Reply reply = co_await op;
  template <typename F>
  auto offload(F fn) {
    return ::shardloop::offload(affinity(), std::move(fn));
  }

  // Starts draining: after ConnectionOptions::drain_grace, reads that would wait fail with
  // Cancelled("connection draining") (a read waiting then is woken with it). Data already
  // received is still returned. Handlers check draining() to tell the client they are closing.
  void drain();
  bool draining() const;

  absl::StatusOr<Address> peer_address() const;
  absl::StatusOr<Address> local_address() const;

  // Wraps a read awaiter of AsyncFd with the connection's timeouts and error reporting.
  template <typename Inner>
  class TimedRead {
   public:
    TimedRead(State* s, Inner inner) : s_(s), inner_(inner) {}
    bool await_ready() { return inner_.await_ready(); }
    template <typename P>
    void await_suspend(std::coroutine_handle<P> h) {
      read_waits(s_);
      inner_.await_suspend(h);  // may hand the coroutine to another worker: the last step
    }
    auto await_resume() -> decltype(std::declval<Inner&>().await_resume()) {
      auto r = inner_.await_resume();
      if (r.ok()) {
        read_done(s_);
        return r;
      }
      return read_failed(s_, r.status());
    }

   private:
    State* s_;
    Inner inner_;
  };
  using ReadAwaiter = TimedRead<AsyncFd::ReadAwaiter>;
  using ReadChunkAwaiter = TimedRead<AsyncFd::ReadChunkAwaiter>;

  class WriteAwaiter {
   public:
    WriteAwaiter(State* s, AsyncFd::WriteAwaiter inner) : s_(s), inner_(inner) {}
    bool await_ready();
    void await_suspend(std::coroutine_handle<> h);
    absl::Status await_resume();

   private:
    State* s_;
    AsyncFd::WriteAwaiter inner_;
  };

 private:
  friend class ConnectionTracker;
  static absl::Status migrate_state(State* s, Worker& target, absl::AnyInvocable<void(bool)> done);
  static void read_waits(State* s);
  static void read_done(State* s);
  static absl::Status read_failed(State* s, const absl::Status& status);
  std::unique_ptr<State> state_;
};

// Applies the options every TCP socket of ours gets (TCP_NODELAY for request/response traffic).
void configure_tcp_socket(int fd);

}  // namespace shardloop::net
