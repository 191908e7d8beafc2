#include "net/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "net/connection_tracker.h"
#include "runtime/errno_status.h"
#include "runtime/worker.h"

namespace shardloop::net {
namespace {

using std::chrono::nanoseconds;
constexpr TimePoint kNever = TimePoint::max();

// One counter for the process: a relaxed read-modify-write per connection, next to the accept
// or connect system call that made it. Starts at 1: affinity 0 means "none".
uint64_t next_connection_key() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

nanoseconds to_ns(absl::Duration d) {
  return d == absl::InfiniteDuration() ? nanoseconds::max() : absl::ToChronoNanoseconds(d);
}

TimePoint after(TimePoint t, nanoseconds d) {
  return (t == TimePoint{} || d == nanoseconds::max() || t == kNever) ? kNever : t + d;
}

}  // namespace

void configure_tcp_socket(int fd) {
  int one = 1;
  // Fails harmlessly on non-TCP sockets (AF_UNIX), which have no Nagle to disable.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Why waiting operations were interrupted, so their results can say so.
enum class Interruption { kNone, kReadTimeout, kWriteTimeout, kIdle, kDeadline, kDraining };

struct Connection::State {
  AsyncFd::Ptr fd;
  nanoseconds read_timeout, write_timeout, idle_timeout;
  TimePoint last_activity{};       // set only when idle_timeout is finite
  TimePoint read_waiting_since{};  // {} when no read waits
  TimePoint write_waiting_since{};
  TimePoint deadline = kNever;
  nanoseconds drain_grace;
  TimePoint drain_at = kNever;  // when draining turns reads that would wait into failures
  bool draining = false;
  TimerId timer = 0;
  TimePoint timer_at = kNever;
  Interruption read_interruption = Interruption::kNone;
  Interruption write_interruption = Interruption::kNone;
  ConnectionTracker* tracker = nullptr;
  // Process-unique, never reused: the affinity of its offloaded tasks and its tracker key.
  const uint64_t key = next_connection_key();
  uint64_t reads = 0;            // completed reads: the load sample the rebalancer uses
  uint64_t reads_at_sample = 0;  // `reads` at the previous sample
  // Set when the connection migrated into another shard's tracker: keeps that shard alive.
  std::shared_ptr<ConnectionTracker> adopted_by;

  State(AsyncFd::Ptr f, const ConnectionOptions& o)
      : fd(std::move(f)),
        read_timeout(to_ns(o.read_timeout)),
        write_timeout(to_ns(o.write_timeout)),
        idle_timeout(to_ns(o.idle_timeout)),
        drain_grace(to_ns(o.drain_grace)) {
    fd->set_write_watermarks(o.write_high_water, o.write_low_water);
    if (idle_timeout != nanoseconds::max()) {
      last_activity = Clock::now();
      arm();
    }
  }

  ~State() {
    if (timer != 0) fd->worker()->cancel_timer(timer);
    if (tracker != nullptr) tracker->remove(this);
  }

  void touch() {
    if (idle_timeout != nanoseconds::max()) last_activity = Clock::now();
  }

  TimePoint next_check() const {
    TimePoint next = std::min(deadline, drain_at);
    next = std::min(next, after(read_waiting_since, read_timeout));
    next = std::min(next, after(write_waiting_since, write_timeout));
    next = std::min(next, after(last_activity, idle_timeout));
    return next;
  }

  // Lazy re-arm: the one timer moves only when a check is due earlier than it would fire.
  void arm() {
    if (fd->closed()) return;
    TimePoint next = next_check();
    if (next == kNever || (timer != 0 && timer_at <= next)) return;
    Worker* w = fd->worker();
    if (timer != 0) w->cancel_timer(timer);
    timer_at = next;
    timer = w->add_timer(next, [this] {
      timer = 0;
      timer_at = kNever;
      on_timer();
    });
  }

  void on_timer() {
    const TimePoint now = Clock::now();
    if (now >= deadline) {
      read_interruption = write_interruption = Interruption::kDeadline;
      abort_socket();
      return;
    }
    if (now >= drain_at) {
      drain_at = kNever;
      stop_waiting_reads();
    }
    if (now >= after(last_activity, idle_timeout)) {
      read_interruption = write_interruption = Interruption::kIdle;
      fd->close();
      return;
    }
    if (now >= after(read_waiting_since, read_timeout)) {
      read_interruption = Interruption::kReadTimeout;
      read_waiting_since = {};
      fd->interrupt_waiters(ETIMEDOUT, /*reads=*/true, /*writes=*/false);
    }
    if (now >= after(write_waiting_since, write_timeout)) {
      write_interruption = Interruption::kWriteTimeout;
      write_waiting_since = {};
      fd->interrupt_waiters(ETIMEDOUT, /*reads=*/false, /*writes=*/true);
    }
    arm();
  }

  void abort_socket() {
    if (fd->closed()) return;
    linger lg{1, 0};  // close() then sends RST and drops unsent data
    ::setsockopt(fd->fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    fd->close();
  }

  void drain() {
    if (fd->closed() || draining) return;
    draining = true;
    if (drain_grace <= nanoseconds::zero()) {
      stop_waiting_reads();
    } else {
      drain_at = Clock::now() + drain_grace;
      arm();
    }
  }

  // From now on a read that would wait fails (Cancelled "connection draining"), and so does
  // the one waiting now, unless bytes have already reached the socket: then their readiness is
  // on its way to this worker (in the poll batch, or handed over by another worker in a shared
  // poll mode), and the waiting read gets them; the read after it fails. Data already received
  // is always returned, so a request the peer sent before the drain is never cut off.
  void stop_waiting_reads() {
    if (fd->closed()) return;
    read_interruption = Interruption::kDraining;
    fd->fail_blocking_reads(ESHUTDOWN);
    int pending = 0;
    if (::ioctl(fd->fd(), FIONREAD, &pending) == 0 && pending > 0) return;
    fd->interrupt_waiters(ESHUTDOWN, /*reads=*/true, /*writes=*/false);
  }

  absl::Status explain(Interruption why, const absl::Status& original) const {
    switch (why) {
      case Interruption::kNone:
        return original;
      case Interruption::kReadTimeout:
        return absl::DeadlineExceededError(absl::StrCat(
            "read timed out after ", absl::FormatDuration(absl::FromChrono(read_timeout))));
      case Interruption::kWriteTimeout:
        return absl::DeadlineExceededError(absl::StrCat(
            "write timed out after ", absl::FormatDuration(absl::FromChrono(write_timeout))));
      case Interruption::kIdle:
        return absl::DeadlineExceededError(absl::StrCat(
            "connection idle for ", absl::FormatDuration(absl::FromChrono(idle_timeout))));
      case Interruption::kDeadline:
        return absl::DeadlineExceededError("connection deadline passed");
      case Interruption::kDraining:
        return absl::CancelledError("connection draining");
    }
    return original;
  }
};

// --- handle ---------------------------------------------------------------------------------

Connection::Connection() = default;
Connection::Connection(AsyncFd::Ptr fd, const ConnectionOptions& options)
    : state_(std::make_unique<State>(std::move(fd), options)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

bool Connection::valid() const { return state_ != nullptr && !state_->fd->closed(); }
int Connection::fd() const { return state_ ? state_->fd->fd() : -1; }
Worker* Connection::worker() const { return state_ ? state_->fd->worker() : nullptr; }
size_t Connection::queued_write_bytes() const {
  return state_ ? state_->fd->queued_write_bytes() : 0;
}

Connection::ReadAwaiter Connection::read(absl::Span<char> buf) {
  return ReadAwaiter(state_.get(), state_->fd->read_some(buf));
}
Connection::ReadChunkAwaiter Connection::read_chunk() {
  return ReadChunkAwaiter(state_.get(), state_->fd->read_chunk());
}
Connection::WriteAwaiter Connection::write(absl::Span<const char> data) {
  return WriteAwaiter(state_.get(), state_->fd->write(data));
}
Connection::WriteAwaiter Connection::write_all(absl::Span<const char> data) {
  return WriteAwaiter(state_.get(), state_->fd->write_all(data));
}
Connection::WriteAwaiter Connection::flush() {
  return WriteAwaiter(state_.get(), state_->fd->flush());
}

Task<absl::Status> Connection::shutdown_write() {
  if (!valid()) co_return absl::FailedPreconditionError("shutdown_write on a closed connection");
  if (absl::Status s = co_await flush(); !s.ok()) co_return s;
  if (::shutdown(fd(), SHUT_WR) != 0) co_return errno_status(errno, "shutdown(SHUT_WR)");
  co_return absl::OkStatus();
}

Task<absl::Status> Connection::finish() {
  if (!valid()) co_return absl::OkStatus();
  absl::Status s = co_await flush();
  close();
  co_return s;
}

void Connection::abort() {
  if (state_) state_->abort_socket();
}

void Connection::close() {
  if (state_) state_->fd->close();
}

void Connection::set_deadline(absl::Time deadline) {
  if (!state_) return;
  state_->deadline = deadline == absl::InfiniteFuture()
                         ? kNever
                         : Clock::now() + absl::ToChronoNanoseconds(deadline - absl::Now());
  state_->arm();
}

void Connection::drain() {
  if (state_) state_->drain();
}

bool Connection::migrating() const { return state_ != nullptr && state_->fd->migrating(); }

absl::Status Connection::migrate(Worker& target, absl::AnyInvocable<void(bool)> done) {
  if (!valid()) return absl::FailedPreconditionError("migrate on a closed connection");
  return migrate_state(state_.get(), target, std::move(done));
}

void Connection::follow_wakes() {
  assert(state_ != nullptr && "follow_wakes on an empty connection");
  State* s = state_.get();
  s->fd->follow_wakes([s](Worker& target) { return migrate_state(s, target, nullptr); });
}

absl::Status Connection::migrate_state(State* s, Worker& target,
                                       absl::AnyInvocable<void(bool)> done) {
  if (s->fd->closed()) return absl::FailedPreconditionError("migrate on a closed connection");
  AsyncFd::MigrationHooks hooks;
  hooks.departure = [s] {
    // Timers and the tracker are the old worker's: leave both.
    if (s->timer != 0) s->fd->worker()->cancel_timer(s->timer);
    s->timer = 0;
    s->timer_at = kNever;
    if (s->tracker != nullptr) {
      s->tracker->remove(s);
      s->tracker = nullptr;
    }
  };
  // The group outlives the old tracker only through this copy.
  std::shared_ptr<const ConnectionTracker::Group> group =
      s->tracker != nullptr ? s->tracker->group_ : nullptr;
  // Shared by the two outcomes; exactly one of them runs.
  auto shared_done = std::make_shared<absl::AnyInvocable<void(bool)>>(std::move(done));
  hooks.abandoned = [shared_done](absl::Status) {
    if (*shared_done) (*shared_done)(false);
  };
  hooks.arrival = [s, group, target = &target, shared_done]() mutable {
    s->adopted_by = nullptr;
    if (group != nullptr && target->index() < group->size()) {
      if (auto t = (*group)[target->index()].lock()) {
        s->adopted_by = t;
        s->tracker = t.get();
        t->insert(s);
        if (t->draining()) s->drain();
      }
    }
    s->arm();  // the timer, now on this worker
    if (*shared_done) (*shared_done)(true);
  };
  return s->fd->migrate_to(target, std::move(hooks));
}

bool Connection::draining() const { return state_ != nullptr && state_->draining; }

uint64_t Connection::affinity() const { return state_ ? state_->key : 0; }

void Connection::spawn_offload(Task<void> task) {
  assert(state_ != nullptr && "spawn_offload on an empty connection");
  state_->fd->worker()->spawn_stealable(std::move(task), state_->key);
}

// --- tracker --------------------------------------------------------------------------------

void ConnectionTracker::add(Connection& conn) {
  if (!conn.state_) return;
  conn.state_->tracker = this;
  insert(conn.state_.get());
}

void ConnectionTracker::insert(Connection::State* state) { states_[state->key] = state; }

void ConnectionTracker::remove(Connection::State* state) { states_.erase(state->key); }

std::vector<ConnectionTracker::Sample> ConnectionTracker::sample(size_t top,
                                                                 absl::Span<const uint64_t> also) {
  std::vector<Sample> all;
  all.reserve(states_.size());
  for (const auto& [key, s] : states_) all.push_back(Sample{key, s->reads - s->reads_at_sample});
  const size_t k = std::min(top, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(),
                    [](const Sample& a, const Sample& b) { return a.reads > b.reads; });
  all.resize(k);
  // The requested ones beyond the top: steal evidence makes a candidate whatever its reads.
  for (uint64_t key : also) {
    auto it = states_.find(key);
    if (it == states_.end()) continue;
    const bool listed = std::any_of(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k),
                                    [key](const Sample& s) { return s.id == key; });
    if (!listed) all.push_back(Sample{key, it->second->reads - it->second->reads_at_sample});
  }
  for (auto& [key, s] : states_) s->reads_at_sample = s->reads;
  return all;
}

absl::Status ConnectionTracker::migrate(uint64_t id, Worker& target) {
  auto it = states_.find(id);
  if (it == states_.end()) return absl::NotFoundError("no such connection on this worker");
  if (it->second->fd->migrating()) return absl::FailedPreconditionError("already migrating");
  return Connection::migrate_state(it->second, target, nullptr);
}

size_t ConnectionTracker::drain_all() {
  draining_ = true;
  std::vector<Connection::State*> all;
  all.reserve(states_.size());
  for (auto& [key, s] : states_) all.push_back(s);
  for (Connection::State* s : all) s->drain();
  return all.size();
}

namespace {
template <typename Fn>
absl::StatusOr<Address> query_name(int fd, Fn fn, const char* what) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (fn(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return errno_status(errno, what);
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}
}  // namespace

absl::StatusOr<Address> Connection::peer_address() const {
  return query_name(fd(), ::getpeername, "getpeername");
}

absl::StatusOr<Address> Connection::local_address() const {
  return query_name(fd(), ::getsockname, "getsockname");
}

// --- awaiters -------------------------------------------------------------------------------

void Connection::read_waits(State* s) {
  if (s->read_timeout != nanoseconds::max()) {
    s->read_waiting_since = Clock::now();
    s->arm();
  }
}

void Connection::read_done(State* s) {
  s->read_waiting_since = {};
  ++s->reads;
  s->touch();
}

absl::Status Connection::read_failed(State* s, const absl::Status& status) {
  s->read_waiting_since = {};
  Interruption why = s->read_interruption;
  if (why == Interruption::kReadTimeout) s->read_interruption = Interruption::kNone;
  return s->explain(why, status);
}

bool Connection::WriteAwaiter::await_ready() {
  bool ready = inner_.await_ready();
  s_->touch();
  return ready;
}

void Connection::WriteAwaiter::await_suspend(std::coroutine_handle<> h) {
  if (s_->write_timeout != nanoseconds::max()) {
    s_->write_waiting_since = Clock::now();
    s_->arm();
  }
  inner_.await_suspend(h);
}

absl::Status Connection::WriteAwaiter::await_resume() {
  s_->write_waiting_since = {};
  absl::Status st = inner_.await_resume();
  if (st.ok()) return st;
  Interruption why = s_->write_interruption;
  if (why == Interruption::kWriteTimeout) s_->write_interruption = Interruption::kNone;
  return s_->explain(why, st);
}

}  // namespace shardloop::net
