#include "runtime/worker.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/async_fd.h"
#include "runtime/log.h"
#include "runtime/runtime.h"
#include "runtime/shared_epoll.h"

namespace shardloop {
namespace {

thread_local Worker* t_current_worker = nullptr;

// Events fetched per poll. Large enough that a storm of ready sockets is drained in a few
// calls, small enough that one poll's dispatch does not delay the run queue for long.
constexpr size_t kEventsPerPoll = 256;

}  // namespace

Worker* Worker::current() { return t_current_worker; }

int64_t Worker::thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

Worker::Worker(Runtime& runtime, size_t index, size_t workers, Backend backend, int cpu)
    : Worker(runtime, index, workers, backend, cpu,
             make_work_stealing_deque<UnstartedRoot>(kDefaultDequeCapacity)) {}

Worker::Worker(Runtime& runtime, size_t index, size_t workers, Backend backend, int cpu,
               StealableDeque deque)
    : runtime_(runtime),
      index_(index),
      cpu_(cpu),
      backend_(backend),
      events_(kEventsPerPoll),
      adaptive_(runtime.options().poll_mode == PollMode::kAdaptive),
      time_every_poll_(runtime.options().time_every_poll),
      wake_affinity_reads_(adaptive_ ? runtime.options().wake_affinity_reads : 0),
      stealable_(std::move(deque.first)),
      victims_(index, workers, index + 1),
      stealer_(std::move(deque.second)) {}

Worker::~Worker() {
  // Joined by Runtime::stop(); messages that arrived after the loop exited are dropped here.
  inbox_batch_.clear();
  inbox_.take_all(inbox_batch_);
  inbox_batch_.clear();
}

void Worker::assert_owner() const {
  assert(t_current_worker == this && "called from a thread that does not own this worker");
}

absl::Status Worker::init_on_thread() {
  absl::StatusOr<std::unique_ptr<Poller>> poller;
  if (SharedEpoll* shared = runtime_.shared_epoll_.get(); shared != nullptr) {
    auto view = SharedEpollPoller::create(*shared, static_cast<uint32_t>(index_),
                                          runtime_.options().poller);
    if (view.ok()) {
      poller = std::unique_ptr<Poller>(std::move(*view));
    } else {
      poller = view.status();
    }
  } else {
    poller = make_poller(backend_, runtime_.options().poller);
  }
  if (!poller.ok()) {
    return absl::Status(poller.status().code(),
                        absl::StrCat("worker ", index_, ": ", poller.status().message()));
  }
  poller_ = std::move(*poller);
  return absl::OkStatus();
}

void Worker::thread_main() {
  t_current_worker = this;
  if (cpu_ >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu_, &set);
    if (int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); err != 0) {
      log(LogLevel::kWarning, "worker %d: cannot pin to CPU %d (error %d); running unpinned",
          index_, cpu_, err);
    }
  }
  // Every worker creates its poller, then waits for the others: either all run, or (if one
  // failed) none does and start() reports the failure.
  if (runtime_.report_init(init_on_thread())) {
    run_loop();
    runtime_.wait_all_loops_exited();
    teardown();
  }
  t_current_worker = nullptr;
}

// The run loop. Phase order, and why:
//  1. run ready jobs first: they are work already known, and running them is what produces
//     the writes and new interest the poll phase will see;
//  2. take inbox messages: cross-worker work joins the local queue for the next iteration;
//  3. poll: non-blocking while work remains, otherwise block until the next timer (the park);
//  4. fire timers after the poll, since a blocking poll sleeps exactly until the earliest one.
void Worker::run_loop() {
  while (!stop_requested_.load(std::memory_order_acquire)) {
    counters_.loop_iterations.bump();
    run_ready();
    run_stealable();
    const bool took_messages = take_inbox();
    if (!has_local_work()) try_steal();
    if (std::exchange(notify_pending_, false)) runtime_.notify_idle_worker();
    const int64_t timeout_ns = poll_timeout_ns();
    if (timeout_ns != 0 || took_messages || !skip_busy_poll()) poll(timeout_ns);
    counters_.timers_fired.bump(timers_.fire_due(Clock::now()));
  }
}

bool Worker::skip_busy_poll() {
  // Adaptive mode on a readiness poller: with work still queued, a poll that cannot block
  // fetches the events that arrived since the last one. Made after every run phase, it is a
  // system call per phase even when a handler only queued the next job (a reply resuming its
  // caller), most often finding nothing; Tokio polls its driver every 61 tasks while tasks
  // remain. So here too: once kJobsPerBusyPoll jobs have run since the last poll, or when the
  // worker would block. Not when messages came in this iteration (run_loop): what became
  // readable before another thread posted is still handled before its message. Completion
  // pollers submit their queued operations in the poll, so they poll after every phase.
  if (!adaptive_ || poller_->completion_io() != nullptr) return false;
  if (jobs_since_poll_ >= kJobsPerBusyPoll) return false;
  counters_.busy_polls_skipped.bump();
  return true;
}

void Worker::run_ready() {
  // Only the jobs queued before this phase began: a job that re-queues itself (yield) runs again
  // after the next poll, so it cannot starve I/O.
  size_t n = ready_.size();
  for (size_t i = 0; i < n; ++i) {
    budget_ = kBudget;
    ++jobs_begun_;
    ready_.pop()();
  }
  counters_.tasks_run.bump(n);
  jobs_since_poll_ += n;
}

bool Worker::take_inbox() {
  if (!inbox_.maybe_nonempty()) return false;
  inbox_.take_all(inbox_batch_);
  counters_.inbox_messages.bump(inbox_batch_.size());
  for (auto& message : inbox_batch_) ready_.push(std::move(message));
  const bool took = !inbox_batch_.empty();
  inbox_batch_.clear();
  return took;
}

int64_t Worker::poll_timeout_ns() {
  if (!ready_.empty() || !stealable_.empty() || !stealable_overflow_.empty()) return 0;
  std::optional<TimePoint> next = timers_.next_deadline();
  if (!next) return -1;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(*next - Clock::now()).count();
  return ns > 0 ? ns : 0;
}

bool Worker::spin_found_work(int64_t& timeout_ns) {
  const int64_t window = runtime_.options().adaptive_spin_ns;
  if (window <= 0 || (timeout_ns > 0 && timeout_ns < window)) return false;
  if (!spin_policy_.should_spin()) return false;
  // A busy spin if a CPU is spare; with none spare, a yielding one (adaptive_park.h). The gate's
  // shared counter is touched only where it can admit someone: with no spare CPU it never does.
  SpinGate& gate = *runtime_.spin_gate_;
  const bool no_spare_cpu = gate.no_spare_cpu();
  const bool busy = !no_spare_cpu && gate.try_enter();
  const int max_yields = runtime_.options().adaptive_spin_yields;
  if (!busy && (max_yields <= 0 || !no_spare_cpu)) return false;
  // With one worker per CPU a yielding spin lasts the window as well as max_yields yields.
  const bool yields_for_window = !busy && gate.one_per_cpu();
  idle_.store(true, std::memory_order_relaxed);
  const TimePoint start = Clock::now();
  const TimePoint end = start + std::chrono::nanoseconds(window);
  const uint64_t events_before = counters_.events.get();
  // A yielding spin is idle time for load sampling (the rebalancer balances busy time), its
  // empty polls included: counted as busy, a lightly loaded worker, which parks (and so spins)
  // the most often, would look loaded; with the window a spin polls for up to 20 us. The poll
  // that found work is busy time: its handlers may resume coroutines inline.
  TimePoint last_poll_start = start;
  bool hit = false;
  int yields = 0;
  do {
    if (!busy) {
      const TimePoint yield_start = Clock::now();
      sched_yield();
      last_poll_start = Clock::now();
      const int64_t yielded_ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(last_poll_start - yield_start)
              .count();
      ++yields;
      // A yield that came back late gave the CPU to a thread that runs whole scheduler slices
      // (another process's CPU-bound work), not to a peer about to make the next event: yield
      // again and this worker reacts a slice late. Parked, its wakeup preempts that thread.
      if (yielded_ns > gate.long_yield_ns()) {
        counters_.spin_long_yields.bump();
        break;
      }
    }
    counters_.spin_polls.bump();
    poll(0);
    hit = counters_.events.get() != events_before || !ready_.empty() || inbox_.maybe_nonempty() ||
          stop_requested_.load(std::memory_order_relaxed) || stealable_elsewhere();
  } while (!hit && (busy ? Clock::now() < end
                         : yields < max_yields || (yields_for_window && Clock::now() < end)));
  idle_.store(false, std::memory_order_relaxed);
  const TimePoint spin_end = Clock::now();
  if (busy) {
    gate.leave();
  } else {
    const TimePoint idle_end = hit ? last_poll_start : spin_end;
    counters_.idle_ns.bump(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(idle_end - start).count()));
  }
  // A timer's timeout was computed before the spin: without this it would fire up to a spin
  // window late.
  if (!hit && timeout_ns > 0) {
    const int64_t spun =
        std::chrono::duration_cast<std::chrono::nanoseconds>(spin_end - start).count();
    timeout_ns = std::max<int64_t>(timeout_ns - spun, 0);
  }
  spin_policy_.record(hit);
  if (hit) counters_.spin_hits.bump();
  return hit;
}

void Worker::poll(int64_t timeout_ns) {
  if (timeout_ns != 0 && adaptive_ && spin_found_work(timeout_ns)) return;
  const bool announced = timeout_ns != 0;
  if (announced) {
    // Park handshake (see inbox.h): announce we may block, then re-check for messages and stop
    // requests that raced with the announcement. A producer that pushed before our store sees
    // either the flag (and writes the eventfd) or we see its message here. The same for
    // stealable roots, with the idle count in place of the inbox (worker_stealing.cc).
    parked_.store(true, std::memory_order_seq_cst);
    idle_.store(true, std::memory_order_relaxed);
    runtime_.idle_workers_.fetch_add(1, std::memory_order_seq_cst);
    if (inbox_.maybe_nonempty() || stop_requested_.load(std::memory_order_seq_cst) ||
        stealable_elsewhere()) {
      timeout_ns = 0;
    } else {
      counters_.parks.bump();
    }
  }
  counters_.polls.bump();
  jobs_since_poll_ = 0;
  // Only a poll allowed to block is timed: the idle time that load sampling subtracts. While
  // load is sampled, the CPU the thread used inside the wait is not idle time: on io_uring the
  // network work of the completions (copies into buffers, sends) runs inside io_uring_enter.
  // time_every_poll times every call, wall and thread CPU (poll_ns, poll_cpu_ns).
  const bool timed = timeout_ns != 0;
  const bool wall_timed = timed || time_every_poll_;
  const bool cpu_timed =
      time_every_poll_ || (timed && measure_wait_cpu_.load(std::memory_order_relaxed));
  const TimePoint wait_start = wall_timed ? Clock::now() : TimePoint{};
  const int64_t cpu_start = cpu_timed ? thread_cpu_ns() : 0;
  auto n = poller_->wait(absl::MakeSpan(events_), timeout_ns);
  if (wall_timed) {
    const int64_t waited =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - wait_start).count();
    const int64_t cpu = cpu_timed ? thread_cpu_ns() - cpu_start : 0;
    counters_.poll_ns.bump(static_cast<uint64_t>(waited));
    if (time_every_poll_ && cpu > 0) counters_.poll_cpu_ns.bump(static_cast<uint64_t>(cpu));
    if (timed && waited > cpu) counters_.idle_ns.bump(static_cast<uint64_t>(waited - cpu));
  }
  // Relaxed: a producer that still sees `true` only writes one spare wakeup, and one that still
  // counts this worker idle only looks for a parked flag it will not find.
  parked_.store(false, std::memory_order_relaxed);
  if (announced) {
    idle_.store(false, std::memory_order_relaxed);
    runtime_.idle_workers_.fetch_sub(1, std::memory_order_relaxed);
  }
  if (!n.ok()) {
    log(LogLevel::kError, "worker %d: poll failed: %s", index_, n.status().ToString());
    return;
  }
  // A spin's poll that found events runs their handlers next: not idle for wake affinity.
  if (*n > 0) idle_.store(false, std::memory_order_relaxed);
  for (size_t i = 0; i < *n; ++i) {
    const PollEvent& ev = events_[i];
    if (ev.owner == PollEvent::kPollingWorker || ev.owner == index_) {
      dispatch(ev);
    } else {
      forward_batch(ev.owner).push_back(ev);
    }
  }
  if (forwarding_) forward_events();
}

void Worker::dispatch(const PollEvent& ev) {
  // Looked up per event, not before the batch: a handler earlier in this batch may have
  // deregistered (or closed and reused) the fd of a later event.
  IoHandle* handle = registry_.find(ev.token);
  if (handle == nullptr) {
    counters_.stale_events.bump();
    return;
  }
  counters_.events.bump();
  budget_ = kBudget;  // a handler may resume a coroutine inline
  ++jobs_begun_;
  handle->on_io(ev);
}

std::vector<PollEvent>& Worker::forward_batch(uint32_t owner) {
  if (forward_.empty()) forward_.resize(runtime_.size());
  forwarding_ = true;
  return forward_[owner];
}

void Worker::forward_events() {
  // One message per owner per poll: the owner dispatches the batch in its next run phase, as
  // if its own poller had reported it (stale tokens are dropped there, by generation).
  forwarding_ = false;
  for (size_t owner = 0; owner < forward_.size(); ++owner) {
    if (forward_[owner].empty()) continue;
    counters_.events_forwarded.bump(forward_[owner].size());
    Worker* target = &runtime_.worker(owner);
    target->post([target, batch = std::move(forward_[owner])] {
      for (const PollEvent& ev : batch) target->dispatch(ev);
    });
    forward_[owner] = {};
  }
}

void Worker::schedule(std::coroutine_handle<> h) {
  assert_owner();
  ready_.push([h] { h.resume(); });
}

void Worker::defer(absl::AnyInvocable<void()> fn) {
  assert_owner();
  ready_.push(std::move(fn));
}

void Worker::spawn(Task<void> task, bool already_counted) {
  assert_owner();
  auto root = internal::make_root(std::move(task));
  root.handle.promise().worker = this;
  roots_.link(&root.handle.promise());
  counters_.live_tasks.set(roots_.size());
  if (!already_counted) runtime_.task_started();
  schedule(root.handle);
}

void Worker::detach_root(internal::RootPromise* root) {
  assert_owner();
  roots_.unlink(root);
  root->worker = nullptr;
  counters_.live_tasks.set(roots_.size());
}

void Worker::attach_root(internal::RootPromise* root) {
  root->worker = this;
  roots_.link(root);
  counters_.live_tasks.set(roots_.size());
}

absl::StatusOr<Token> Worker::register_fd(int fd, IoHandle* handle, uint32_t interest) {
  assert_owner();
  Token token = registry_.add(handle);
  if (absl::Status s = poller_->add(fd, token.encode(), interest); !s.ok()) {
    registry_.release(token);
    return s;
  }
  return token;
}

void Worker::deregister_fd(int fd, Token token) {
  assert_owner();
  registry_.release(token);
  if (absl::Status s = poller_->remove(fd, token.encode()); !s.ok()) {
    log(LogLevel::kWarning, "worker %d: %s", index_, s.ToString());
  }
}

TimerId Worker::add_timer(TimePoint deadline, TimerQueue::Callback callback) {
  assert_owner();
  return timers_.add(deadline, std::move(callback));
}

bool Worker::cancel_timer(TimerId id) {
  assert_owner();
  return timers_.cancel(id);
}

void Worker::post(Inbox::Message fn) {
  // Read before the push: a spinner that sees the message stops being idle at once.
  const bool idle = idle_.load(std::memory_order_relaxed);
  inbox_.push(std::move(fn));
  wake_if_parked();
  if (idle) note_idle_wake_by_current();
}

void Worker::note_idle_wake_by_current() {
  Worker* from = current();
  if (from == nullptr || from == this || &from->runtime_ != &runtime_) return;
  // On `from`'s own thread: its owner-only counters.
  ++from->idle_wakes_;
  from->last_idle_woken_ = index_;
}

bool Worker::wake_if_parked() {
  // Write the eventfd only if the worker is parked, and only once per park: whoever flips
  // `parked_` from true to false owns the wakeup.
  if (parked_.load(std::memory_order_seq_cst) &&
      parked_.exchange(false, std::memory_order_seq_cst)) {
    counters_.wakeups_sent.fetch_add(1, std::memory_order_relaxed);
    poller_->wake();
    return true;
  }
  return false;
}

void Worker::request_stop() {
  stop_requested_.store(true, std::memory_order_seq_cst);
  // Always wake on stop: a spare wakeup costs nothing here and a missed one would hang join().
  poller_->wake();
}

void Worker::teardown() {
  // Destroying suspended roots runs their destructors (closing fds, cancelling timers) here, on
  // the owner, while the poller and registry still exist. Roots that never started are adopted
  // first so that they are destroyed (and uncounted) the same way.
  adopt_unstarted_roots();
  roots_.destroy_all();
  counters_.live_tasks.set(0);
  ready_.clear();
  timers_.clear();
  // Handles closed with completions in flight free themselves when the last one arrives: poll
  // for those (bounded; cancellations complete within a loop iteration or two), then reclaim
  // whatever is left. Only the owner's coroutines are gone, so dispatch touches nothing else.
  const auto give_up = Clock::now() + std::chrono::milliseconds(500);
  while (!lingering_.empty() && Clock::now() < give_up) {
    poll(1'000'000);
    ready_.clear();
  }
  for (AsyncFd* fd : std::vector<AsyncFd*>(lingering_.begin(), lingering_.end())) delete fd;
  lingering_.clear();
}

// --- root tasks --------------------------------------------------------------------------------

namespace internal {

RootCoroutine make_root(Task<void> task) { co_await std::move(task); }

void RootList::link(RootPromise* p) {
  p->prev = nullptr;
  p->next = head_;
  if (head_ != nullptr) head_->prev = p;
  head_ = p;
  ++size_;
}

void RootList::unlink(RootPromise* p) {
  if (p->prev != nullptr)
    p->prev->next = p->next;
  else
    head_ = p->next;
  if (p->next != nullptr) p->next->prev = p->prev;
  p->prev = p->next = nullptr;
  --size_;
}

void RootList::destroy_all() {
  while (head_ != nullptr) {
    // destroy() runs ~RootPromise, which unlinks it.
    root_handle(head_).destroy();
  }
}

void RootPromise::unhandled_exception() noexcept {
  worker->counters_.uncaught_exceptions.bump();
  try {
    throw;
  } catch (const std::exception& e) {
    log(LogLevel::kError, "worker %d: task ended with an uncaught exception: %s", worker->index(),
        e.what());
  } catch (...) {
    log(LogLevel::kError, "worker %d: task ended with an uncaught non-standard exception",
        worker->index());
  }
}

RootPromise::~RootPromise() {
  if (worker == nullptr) return;
  worker->roots_.unlink(this);
  worker->counters_.live_tasks.set(worker->roots_.size());
  worker->runtime_.task_finished();
}

}  // namespace internal

void spawn(Task<void> task) {
  Worker* w = Worker::current();
  assert(w != nullptr && "spawn() outside a worker; use Runtime::spawn_on()");
  w->spawn(std::move(task));
}

void spawn_stealable(Task<void> task) {
  Worker* w = Worker::current();
  assert(w != nullptr && "spawn_stealable() outside a worker; use Runtime::spawn()");
  w->spawn_stealable(std::move(task));
}

}  // namespace shardloop
