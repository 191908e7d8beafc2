// Work stealing between workers: stealable roots, the idle search, and its wakeups.
//
// What moves. Only roots spawned with spawn_stealable() that have not started. A root that has
// run once may hold its worker's fds, timers and child frames, and resuming it elsewhere would
// break the rule that a coroutine resumes on its owner; an unstarted root holds nothing, so the
// worker that starts it simply becomes its owner (start_root() links it into that worker's
// RootList, as spawn() would have). Connections move by migration, not by stealing.
//
// Queues. Each worker has a fixed Chase-Lev ring (runtime/work_stealing_deque.h) and a private
// FIFO for the excess. The owner starts its roots from the ring's top, oldest first (the same
// CAS a thief uses: fairness for the owner, and the ring's slots are claimed one way only); it
// starts at most what was queued when the phase began, so a root that spawns roots cannot keep
// the worker from polling, and at most kStartsPerTurn, so a burst of spawns does not delay the
// next poll by more than a few hundred task starts. Each run phase refills the ring from the
// excess.
//
// Searching. A worker with nothing local to run (no ready job, no queued root, no inbox message)
// searches before it parks: it first reads the other rings' sizes (plain loads of lines that are
// only written when roots are pushed or taken, so an idle runtime pays nothing), then takes a
// search permit from the runtime's StealCoordinator (at most ceil(N/2) searchers, so a crowd of
// idle workers does not hammer one victim's `top`), picks victims in random round order
// (VictimPicker) and steals half of the first non-empty ring, at most kMaxStealBatch.
//
// Wakeups (the handshake that keeps a root from waiting while a worker sleeps).
//   producer (pushes roots)                     parker (about to block in its poller)
//   1. push to its ring (release store)         a. parked_ = true (seq_cst)
//   2. idle_workers_.fetch_add(0) (seq_cst)     b. idle_workers_.fetch_add(1) (seq_cst)
//   3. if it read > 0 and nobody is searching,  c. re-check every other ring (seq_cst loads);
//      wake one parked worker                      if one is non-empty, do not block
// The two read-modify-writes on idle_workers_ are totally ordered. If (b) comes first, (2) reads
// it and the producer looks for a parked worker: (a) happens-before (2) through (b), so it finds
// the flag. If (2) comes first, (b) reads from it (acquire), so (1) happens-before (c) and the
// parker sees the root. Skipping the wakeup because someone is searching is safe: a searcher
// ends its search (seq_cst) before its own (b), so a searcher the producer still counts after
// (2) has not done (b) yet; its (b) comes after (2) and its (c) sees the root. A searcher that
// finds work and was the last searcher wakes another idle worker, since producers skipped waking
// anyone while it searched. The producer side runs on every push to a ring (spawn, and the
// refill from the excess once per run phase): one uncontended read-modify-write when no worker
// is idle, which is cheap beside the coroutine frame the spawn allocated.
//
// Steal hints (what lets a connection follow its stolen work; scheduler/rebalancer.h). A root
// spawned with a non-zero affinity remembers its origin, the worker that spawned it. Whoever starts
// it reports that start to the origin, only while the origin collects hints:
//  - the origin itself: StealHintLedger::record_local, directly (the ledger is owner-only);
//  - any other worker (a thief, or a thief's thief: where it runs is what counts): a record
//    {affinity, thief} pushed onto the origin's StealHintRing (any-thread, lossy when full).
// The origin folds its ring into its ledger at the start of every run phase, before it starts
// any root of its own, and before take_steal_hints() hands the ledger out. Roots spawned with
// affinity 0 record nothing, and neither do roots spawned by spawn_stealable() without one.
#include <algorithm>
#include <cassert>
#include <utility>

#include "runtime/runtime.h"
#include "runtime/worker.h"

namespace shardloop {
void Worker::spawn_stealable(Task<void> task, uint64_t affinity) {
  push_stealable(std::move(task), affinity, /*already_counted=*/false);
}

void Worker::push_stealable(Task<void> task, uint64_t affinity, bool already_counted) {
  assert_owner();
  auto root = internal::make_root(std::move(task));
  if (!already_counted) runtime_.task_started();
  UnstartedRoot r = &root.handle.promise();
  if (affinity != 0) {
    r->affinity = affinity;
    r->origin = this;
  }
  // Behind the excess when there is one, so roots start in the order they were spawned.
  if (!stealable_overflow_.empty() || !stealable_.push(r)) {
    stealable_overflow_.push_back(r);  // not stealable until a run phase moves it to the ring
    return;
  }
  runtime_.notify_idle_worker();
}

void Worker::start_root(UnstartedRoot root) {
  if (root->affinity != 0) note_affinity_start(root);
  root->worker = this;
  roots_.link(root);
  counters_.live_tasks.set(roots_.size());
  counters_.stealable_started.bump();
  budget_ = kBudget;
  internal::root_handle(root).resume();
}

void Worker::note_affinity_start(UnstartedRoot root) {
  Worker* origin = root->origin;
  // Relaxed: the switch only decides whether to record (see set_collect_steal_hints()).
  if (!origin->collect_steal_hints_.load(std::memory_order_relaxed)) return;
  if (origin == this) {
    steal_hints_.record_local(root->affinity);
  } else {
    origin->steal_hint_ring_.push({root->affinity, static_cast<uint32_t>(index_)});
  }
}

void Worker::fold_steal_hints() {
  const bool collecting = collect_steal_hints_.load(std::memory_order_relaxed);
  while (std::optional<StealRecord> r = steal_hint_ring_.pop()) {
    if (collecting) steal_hints_.record_steal(r->affinity, r->thief);
  }
  // Switched off: what was collected is nobody's any more, and must not reach the first take()
  // of whoever switches collection on next.
  if (!collecting && steal_hints_.size() > 0) (void)steal_hints_.take();
}

StealHintReport Worker::take_steal_hints() {
  assert_owner();
  fold_steal_hints();
  StealHintReport report = steal_hints_.take();
  const uint64_t ring_drops = steal_hint_ring_.dropped();
  report.dropped += ring_drops - ring_drops_reported_;
  ring_drops_reported_ = ring_drops;
  return report;
}

void Worker::run_stealable() {
  // Thieves' records first: a steal reported before this phase is ordered before the local
  // starts below (the order the ledger's streaks are counted in).
  fold_steal_hints();
  size_t n = std::min(stealable_.size() + stealable_overflow_.size(), kStartsPerTurn);
  for (size_t i = 0; i < n; ++i) {
    std::optional<UnstartedRoot> root = stealer_.steal();
    if (!root && !stealable_overflow_.empty()) {
      root = stealable_overflow_.front();
      stealable_overflow_.pop_front();
    }
    if (!root) break;  // thieves took the rest
    ++jobs_since_poll_;
    ++jobs_begun_;
    start_root(*root);
  }
  while (!stealable_overflow_.empty() && stealable_.free_slots() > 0) {
    [[maybe_unused]] bool pushed = stealable_.push(stealable_overflow_.front());
    assert(pushed);
    stealable_overflow_.pop_front();
    notify_pending_ = true;
  }
}

bool Worker::has_local_work() const {
  return !ready_.empty() || !stealable_.empty() || !stealable_overflow_.empty() ||
         inbox_.maybe_nonempty();
}

bool Worker::try_steal() {
  Runtime& rt = runtime_;
  bool any = false;
  for (size_t v = 0; v < rt.size() && !any; ++v) {
    any = v != index_ && rt.worker(v).stealable_hint() > 0;
  }
  if (!any || !rt.steal_coordinator_->begin_search()) return false;
  counters_.steal_searches.bump();
  size_t got = 0;
  victims_.pick([&](size_t v) {
    got = rt.worker(v).stealer_.steal_half_into(stealable_);
    return got > 0;
  });
  const bool last_searcher = rt.steal_coordinator_->end_search();
  if (got == 0) return false;
  counters_.tasks_stolen.bump(got);
  if (last_searcher) rt.notify_idle_worker();
  return true;
}

bool Worker::stealable_elsewhere() const {
  for (size_t v = 0; v < runtime_.size(); ++v) {
    if (v != index_ && !runtime_.worker(v).stealer_.empty()) return true;
  }
  return false;
}

void Worker::adopt_unstarted_roots() {
  // Every loop has exited (Runtime::wait_all_loops_exited), so no thief is left to race with.
  while (std::optional<UnstartedRoot> root = stealable_.pop()) {
    (*root)->worker = this;
    roots_.link(*root);
  }
  for (UnstartedRoot root : stealable_overflow_) {
    root->worker = this;
    roots_.link(root);
  }
  stealable_overflow_.clear();
}

void spawn_stealable(Task<void> task, uint64_t affinity) {
  Worker* w = Worker::current();
  assert(w != nullptr && "spawn_stealable() outside a worker; use Runtime::spawn()");
  w->spawn_stealable(std::move(task), affinity);
}

void Runtime::notify_idle_worker() {
  // A read-modify-write, not a load: it is step 2 of the handshake in the file comment.
  if (idle_workers_.fetch_add(0, std::memory_order_seq_cst) == 0) return;
  if (steal_coordinator_->searching() > 0) return;
  const size_t n = workers_.size();
  const size_t start = next_notify_.fetch_add(1, std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    if (workers_[(start + i) % n]->wake_if_parked()) return;
  }
}

}  // namespace shardloop
