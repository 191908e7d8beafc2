// Live migration of a stream to another worker, together with the task waiting to read it.
//
// The handoff, in order:
//  1. Request (owner). migrate_to(target, hooks) records the move. It starts when a read is
//     waiting and no write is, so that the task is parked on this fd and nowhere else, and
//     always in a job of its own (schedule_migration_start): never inside the await_suspend
//     of the read, since a task awaited inline (task.h) still has its awaiters' await_suspend
//     on this thread's stack, touching its frame after it suspends; a handoff from there would
//     let the target resume the frame while they do.
//  2. Quiesce (owner). From here nothing new is submitted and the waiting reader is not resumed.
//     epoll: nothing is ever in flight, so this step is immediate. io_uring: the multishot
//     receive is cancelled, and the move waits for the final completion of every operation in
//     flight (the receive's last CQE, a send's CQE), since each may still point at this object
//     or at a provided buffer of this worker's ring.
//  3. Detach (owner). Received but unread chunks are copied into owned memory (`carried_`) and
//     their buffers go back to this worker's ring. The fd is deregistered (epoll_ctl DEL) or its
//     token released, so an event still queued for it fails the generation check and is
//     dropped. The waiting task's root leaves this worker's root list; `departure` runs.
//  4. Send (owner). One inbox message to the target carries the AsyncFd (write queue, carried
//     input, watermarks, the waiting ReadOp) and the root. It is the owner's last access: from
//     here the old worker holds no reference to either, and the inbox's mutex orders all it did
//     before anything the target does.
//  5. Register (target). The fd gets a token in the target's registry and poller (epoll_ctl ADD,
//     which reports readiness already present), or, on io_uring, a new multishot receive when
//     the read is retried. The root joins the target's root list; `arrival` runs.
//  6. Re-check (target). The waiting read is retried at once (carried input first, then the
//     socket or the receive queue) and the coroutine resumes on the target if it completes, so
//     bytes that arrived during the move do not wait for another event. Queued output is flushed.
// Giving up: close(), or an interrupt or cancellation of the waiting read, before step 3 drops
// the move (`abandoned`) and leaves the fd with its owner as if nothing had been asked. If the
// runtime stops with the message of step 4 unrun, its destructor closes the fd and destroys the
// root's frame on the target's (stopped) worker, so nothing leaks.
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>
#include <cstring>
#include <optional>
#include <utility>

#include "runtime/async_fd.h"
#include "runtime/completion_io.h"
#include "runtime/log.h"
#include "runtime/runtime.h"
#include "runtime/worker.h"

namespace shardloop {

// The message of step 4. Move-only; whoever destroys it unrun discards the fd and the task.
struct AsyncFd::MigrationHandoff {
  AsyncFd* fd;
  Worker* target;
  internal::RootPromise* root;
  absl::AnyInvocable<void()> arrival;
  bool completion;

  MigrationHandoff(AsyncFd* f, Worker* t, internal::RootPromise* r, absl::AnyInvocable<void()> a,
                   bool c)
      : fd(f), target(t), root(r), arrival(std::move(a)), completion(c) {}
  MigrationHandoff(MigrationHandoff&& o) noexcept
      : fd(std::exchange(o.fd, nullptr)),
        target(o.target),
        root(o.root),
        arrival(std::move(o.arrival)),
        completion(o.completion) {}
  MigrationHandoff& operator=(MigrationHandoff&&) = delete;

  void operator()() {
    AsyncFd* f = std::exchange(fd, nullptr);
    f->arrive(target, root, std::move(arrival), completion);
  }
  ~MigrationHandoff() {
    if (fd != nullptr) fd->discard_in_transit(target, root);
  }
};

absl::Status AsyncFd::migrate_to(Worker& target, MigrationHooks hooks) {
  worker_->assert_owner();
  if (kind_ != Kind::kStream) return absl::FailedPreconditionError("only streams can migrate");
  if (closed() || closing_) return absl::FailedPreconditionError("migrate_to on a closed fd");
  if (migration_ != nullptr) return absl::FailedPreconditionError("a migration is under way");
  if (&target == worker_) return absl::InvalidArgumentError("the fd is on that worker already");
  if (target.backend() != worker_->backend()) {
    return absl::InvalidArgumentError("the target worker polls with another backend");
  }
  migration_.reset(new Migration{&target, std::move(hooks)});
  schedule_migration_start();
  return absl::OkStatus();
}

void AsyncFd::wait_to_read(ReadOp& op, std::coroutine_handle<> h) {
  op.waiter = h;
  reader_ = &op;
  if (migration_ != nullptr) {
    schedule_migration_start();
  } else if (follower_ != nullptr) {
    follow_wakes_on_wait();
  }
}

void AsyncFd::follow_wakes(WakeFollower::Move move) {
  worker_->assert_owner();
  assert(kind_ == Kind::kStream && "only streams can follow their wakes (migrate_to)");
  follower_ = std::make_unique<WakeFollower>(std::move(move));
}

void AsyncFd::note_read_returned() {
  if (follower_ == nullptr) return;
  follower_->read_returned({.idle_wakes = worker_->idle_wakes(),
                            .jobs_begun = worker_->jobs_begun(),
                            .last_woken = worker_->last_idle_woken()});
}

void AsyncFd::follow_wakes_on_wait() {
  const uint32_t reads = worker_->wake_affinity_reads();
  if (reads == 0) return;
  // What maybe_start_migration needs, so that a move asked for now starts in its job.
  const bool movable =
      reader_->root != nullptr && writer_ == nullptr && !read_ready_waiter_ && !write_ready_waiter_;
  std::optional<size_t> target = follower_->read_waits({.idle_wakes = worker_->idle_wakes(),
                                                        .jobs_begun = worker_->jobs_begun(),
                                                        .last_woken = worker_->last_idle_woken()},
                                                       reads, movable);
  if (!target) return;
  Worker* from = worker_;
  // migrate_to starts the move in a job of its own (step 1), never in this await_suspend.
  absl::Status moved = follower_->move(from->runtime().worker(*target));
  if (moved.ok()) {
    from->count_wake_affinity_move();
  } else {
    log(LogLevel::kDebug, "worker %d: wake affinity: no move to worker %d: %s", from->index(),
        *target, moved.ToString());
  }
}

void AsyncFd::schedule_migration_start() {
  // By token, not by pointer: the fd may be closed and freed before the job runs.
  Worker* w = worker_;
  const Token token = token_;
  w->defer([w, token] {
    auto* fd = static_cast<AsyncFd*>(w->find_handle(token));
    if (fd != nullptr && fd->migration_ != nullptr) fd->maybe_start_migration();
  });
}

bool AsyncFd::quiescing() const { return migration_ != nullptr && migration_->quiescing; }

// Step 2.
void AsyncFd::maybe_start_migration() {
  if (migration_->quiescing || reader_ == nullptr || writer_ != nullptr || read_ready_waiter_ ||
      write_ready_waiter_) {
    return;
  }
  if (reader_->root == nullptr) {
    abandon_migration(absl::FailedPreconditionError(
        "the coroutine waiting to read is not running under a root task"));
    return;
  }
  if (cio_ != nullptr && recv_armed_ && !recv_cancelling_) {
    if (!cio_->cancel(with_op(token_.encode(), io_ops::kRecv)).ok()) {
      abandon_migration(absl::ResourceExhaustedError("cannot cancel the receive to migrate"));
      return;
    }
    recv_cancelling_ = true;
  }
  migration_->quiescing = true;
  if (cio_ == nullptr || inflight_ == 0) finish_migration();
  // Otherwise on_completion() calls finish_migration() when the last completion arrives.
}

void AsyncFd::abandon_migration(absl::Status why) {
  std::unique_ptr<Migration> m = std::move(migration_);
  if (m->hooks.abandoned) m->hooks.abandoned(std::move(why));
}

// Steps 3 and 4.
void AsyncFd::finish_migration() {
  std::unique_ptr<Migration> m = std::move(migration_);
  Worker* old = worker_;
  internal::RootPromise* root = reader_->root;
  const bool completion = cio_ != nullptr;
  if (completion) {
    return_lent_buffer();
    if (carried_off_ > 0) {
      carried_.erase(0, carried_off_);
      carried_off_ = 0;
    }
    for (size_t i = chunk_head_; i < chunks_.size(); ++i) {
      const Chunk& c = chunks_[i];
      absl::Span<const char> bytes = cio_->buffer(c.id, c.length);
      carried_.append(bytes.data() + c.offset, c.length - c.offset);
      cio_->recycle_buffer(c.id);
    }
    chunks_.clear();
    chunk_head_ = 0;
    starved_ = false;
    assert(!recv_armed_ && !send_inflight_ && inflight_ == 0);
    old->release_handle(token_);
  } else {
    old->deregister_fd(raw_fd_, token_);
  }
  old->detach_root(root);
  if (m->hooks.departure) m->hooks.departure();
  worker_ = nullptr;
  cio_ = nullptr;
  Worker* target = m->target;
  target->post(MigrationHandoff(this, target, root, std::move(m->hooks.arrival), completion));
}

// Steps 5 and 6, on the target.
void AsyncFd::arrive(Worker* target, internal::RootPromise* root,
                     absl::AnyInvocable<void()> arrival, bool completion) {
  worker_ = target;
  target->attach_root(root);
  int register_error = 0;
  if (completion) {
    cio_ = target->completion_io();
    token_ = target->register_handle(this);
  } else {
    auto token = target->register_fd(raw_fd_, this, io_events::kReadable | io_events::kWritable);
    if (token.ok()) {
      token_ = *token;
    } else {
      log(LogLevel::kError, "worker %d: a migrated connection cannot be registered: %s",
          target->index(), token.status().ToString());
      register_error = EIO;
    }
    maybe_readable_ = maybe_writable_ = true;
  }
  if (arrival) arrival();
  if (register_error != 0) {
    // Unusable here (the target's poller refused it): close it and fail the waiting read.
    ::close(std::exchange(raw_fd_, -1));
    fd_ = -1;
    closing_ = true;
    write_queue_.clear();
    if (reader_ != nullptr) {
      reader_->result = -register_error;
      std::exchange(reader_, nullptr)->waiter.resume();  // last: the reader may free us
    }
    return;
  }
  flush_queue();
  if (reader_ != nullptr && start_read(*reader_)) {
    // Inline, not queued: a read_chunk() view may point into the worker's scratch buffer,
    // which another connection's read could overwrite first. Last: the reader may free us.
    std::exchange(reader_, nullptr)->waiter.resume();
  }
}

void AsyncFd::discard_in_transit(Worker* target, internal::RootPromise* root) {
  // The target stopped before the handoff ran; every worker loop has exited. Destroying the
  // root's frame destroys the task and, through its AsyncFd::Ptr, this object (closed already,
  // so the deleter frees it at once).
  ::close(std::exchange(raw_fd_, -1));
  fd_ = -1;
  closing_ = true;
  reader_ = nullptr;
  write_queue_.clear();
  worker_ = target;
  target->attach_root(root);
  internal::root_handle(root).destroy();
}

bool AsyncFd::read_carried(ReadOp& op) {
  if (carried_.empty()) return false;
  const size_t avail = carried_.size() - carried_off_;
  if (avail == 0) {
    std::string().swap(carried_);  // an idle connection keeps no buffer
    carried_off_ = 0;
    return false;
  }
  if (op.buf == nullptr) {
    // read_chunk(): a view valid until the next read, which frees or advances the string.
    op.view = carried_.data() + carried_off_;
    op.result = static_cast<ssize_t>(avail);
    carried_off_ = carried_.size();
  } else {
    const size_t n = std::min(avail, op.len);
    std::memcpy(op.buf, carried_.data() + carried_off_, n);
    carried_off_ += n;
    op.result = static_cast<ssize_t>(n);
  }
  return true;
}

}  // namespace shardloop
