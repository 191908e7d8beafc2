// Channel<T>: messages between the workers of one Runtime, carried on one bounded
// single-producer single-consumer ring per (producer worker, consumer worker) pair (seed 004:
// per-CPU rings instead of one shared MPSC queue, so producers never contend with each other).
//
//   Channel<Op*> ch(rt, [](size_t from, Op* op) { ... });  // the handler runs on the consumer
//   ch.send(to, op);   // on a worker of `rt`: queued on the ring (this worker -> to)
//   ch.flush();        // optional: publish this worker's sends now (see "Wakeups")
//
// Delivery: every message is handled exactly once, on the consumer worker's thread, by the
// handler; the messages one producer sends to one consumer are handled in the order sent. There
// is no order between different producers. A message still queued when the runtime stops is
// destroyed unhandled.
//
// Wakeups. A consumer is not woken per message. Each ring has a `scheduled` flag, true while a
// drain job for it is queued on (or running on) the consumer. Publishing a ring swaps the flag to
// true and posts one drain job through the consumer's inbox (Worker::post) only when it was
// false, i.e. when the ring went from "nobody will look at it" to non-empty. The drain job then
// handles everything in the ring in one batch (up to the ring's capacity per job, then it
// re-queues itself so other jobs run in between). Sends are not published one by one: send()
// pushes and marks the ring dirty, and the producer publishes its dirty rings in flush(), which
// the caller may call after a batch of sends and which otherwise runs as a deferred job after
// the current one (Worker::defer). A drain job flushes its own worker after its batch, so
// replies sent by a handler go out together.
//
// Full ring: the producer neither waits nor drops. It falls back to the consumer's inbox: the
// message travels inside a posted job that first drains the ring (everything sent before it)
// and then handles the message. Until every such job has run, later sends take the inbox too,
// so the per-producer order holds. Waiting was rejected because handlers send (a request's
// reply goes back from inside the drain job, which cannot suspend), and two workers whose rings
// to each other are both full would wait for each other forever. The inbox is unbounded, so
// the ring bounds only the fast path; ChannelStats::overflowed counts the fallbacks.
//
// Memory orders (each pair named at its use below):
//  - `tail`: the producer writes the slot, then stores tail with release; the consumer loads
//    tail with acquire before reading the slot.
//  - `head`: the consumer takes the slot out, then stores head with release; the producer loads
//    head with acquire before reusing the slot.
//  - `scheduled`: both sides change it only with acq_rel exchanges, so every change reads the
//    latest value and the changes are totally ordered. The consumer ends a drain with
//    exchange(false) and then re-reads tail; the producer publishes with exchange(true) after
//    its tail stores. If the producer's exchange comes first, the consumer's exchange reads it
//    (or a later exchange in its release sequence) and acquires the producer's tail; if the
//    consumer's comes first, the producer reads false and posts a drain. Either way the message
//    is seen: no lost wakeup, with no standalone fence (ThreadSanitizer does not model those).
//  - `overflow_done`: the consumer counts inbox-carried messages with a release store; the
//    producer compares it with its own count (acquire) to know when the ring is safe again.
//
// Thread-safety: send() and flush() on a worker of the runtime (the producer end of a ring is
// owned by its producer worker's thread); the handler runs on consumer workers, concurrently on
// several of them, so it must be safe to call so; stats() from any thread. Construct after
// Runtime::start(). Destroy after the runtime has stopped: queued drain jobs point into the
// channel.
#pragma once

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/worker.h"

namespace shardloop {

struct ChannelOptions {
  // Messages per ring, rounded up to a power of two. 1024 pointer-sized messages is 16 KiB per
  // pair: room for a large pipelined batch from every connection of a worker, small enough for
  // n^2 rings on a many-core box. Tests shrink it to reach the full-ring path.
  size_t capacity = 1024;
};

struct ChannelStats {
  uint64_t sent = 0;        // messages sent (ring or inbox)
  uint64_t overflowed = 0;  // of which carried by the inbox because the ring was full
  uint64_t wakeups = 0;     // drain jobs posted to consumers
  uint64_t handled = 0;     // messages handled by consumers

  ChannelStats& operator+=(const ChannelStats& o) {
    sent += o.sent;
    overflowed += o.overflowed;
    wakeups += o.wakeups;
    handled += o.handled;
    return *this;
  }
};

template <typename T>
class Channel {
 public:
  // Called on the consumer worker with the producer's index and the message.
  using Handler = std::function<void(size_t from, T message)>;

  Channel(Runtime& runtime, Handler handler, ChannelOptions options = {})
      : runtime_(runtime), handler_(std::move(handler)), n_(runtime.size()) {
    assert(n_ > 0 && "construct the channel after Runtime::start()");
    size_t capacity = 1;
    while (capacity < options.capacity) capacity <<= 1;
    rings_.reserve(n_ * n_);
    for (size_t from = 0; from < n_; ++from) {
      for (size_t to = 0; to < n_; ++to)
        rings_.push_back(std::make_unique<Ring>(from, to, capacity));
    }
    producers_ = std::make_unique<Producer[]>(n_);
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  size_t workers() const { return n_; }

  // Queues `message` for worker `to` (which may be the calling worker). Never blocks, never
  // drops. Call on a worker of the runtime.
  void send(size_t to, T message) {
    const size_t from = current_index();
    Ring& r = ring(from, to);
    r.sent.bump();
    if (r.overflow_sent != r.overflow_acked) {
      // Acquire pairs with the consumer's release store of overflow_done: once they match,
      // every inbox-carried message has been handled, so the ring may be used again without
      // overtaking one. (Loaded only while some are outstanding: the fast path reads no line
      // the consumer writes.)
      r.overflow_acked = r.overflow_done.load(std::memory_order_acquire);
    }
    if (r.overflow_sent != r.overflow_acked || !try_push(r, message)) {
      overflow(r, std::move(message));
      return;
    }
    if (!r.dirty) {
      r.dirty = true;
      Producer& p = producers_[from];
      p.dirty.push_back(to);
      if (!p.flush_queued) {
        p.flush_queued = true;
        Worker::current()->defer([this, from] {
          producers_[from].flush_queued = false;
          flush_worker(from);
        });
      }
    }
  }

  // Publishes the calling worker's sends: posts a drain job to each consumer that has none.
  void flush() { flush_worker(current_index()); }

  ChannelStats stats() const {
    ChannelStats total;
    for (size_t from = 0; from < n_; ++from) {
      for (size_t to = 0; to < n_; ++to) total += stats(from, to);
    }
    return total;
  }
  ChannelStats stats(size_t from, size_t to) const {
    const Ring& r = *rings_[from * n_ + to];
    return {.sent = r.sent.get(),
            .overflowed = r.overflowed.get(),
            .wakeups = r.wakeups.get(),
            .handled = r.handled.get()};
  }

 private:
  // Single-writer counter: the writer bumps with a relaxed load and store (no locked
  // instruction); readers on any thread get a relaxed, untorn value.
  struct Counter {
    std::atomic<uint64_t> v{0};
    void bump() { v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
    uint64_t get() const { return v.load(std::memory_order_relaxed); }
  };

  // One (producer, consumer) pair. The producer's fields, the consumer's fields and the shared
  // flag each get their own cache line (alignas(64)), so a producer writing `tail` on every
  // send does not keep invalidating the line the consumer writes `head` to, and vice versa.
  struct Ring {
    Ring(size_t f, size_t t, size_t capacity)
        : from(f), to(t), mask(capacity - 1), slots(new std::optional<T>[capacity]) {}

    const size_t from, to, mask;
    const std::unique_ptr<std::optional<T>[]> slots;

    // Producer-owned: written by the producer worker only (`tail` and the counters are read by
    // others).
    alignas(64) std::atomic<uint64_t> tail{0};  // next slot to fill
    uint64_t cached_head = 0;                   // the producer's last view of `head`
    uint64_t overflow_sent = 0;                 // messages sent through the inbox
    uint64_t overflow_acked = 0;                // the producer's last view of overflow_done
    bool dirty = false;                         // pushed since this ring was last published
    Counter sent, overflowed, wakeups;

    // Consumer-owned: written by the consumer worker only.
    alignas(64) std::atomic<uint64_t> head{0};  // next slot to take
    std::atomic<uint64_t> overflow_done{0};     // inbox-carried messages handled
    Counter handled;

    // Both sides: true while a drain job for this ring is queued or running (see file comment).
    alignas(64) std::atomic<bool> scheduled{false};
  };

  // Per producer worker, owner-only: which rings it pushed to since its last flush.
  struct alignas(64) Producer {
    std::vector<size_t> dirty;  // consumer indices
    bool flush_queued = false;  // a deferred flush_worker() is in this worker's run queue
  };

  // Messages one drain job handles before re-queuing itself: one ring's worth, so a producer
  // that keeps its ring full cannot hold the consumer in one job forever.
  size_t drain_budget(const Ring& r) const { return r.mask + 1; }

  size_t current_index() const {
    Worker* w = Worker::current();
    assert(w != nullptr && &w->runtime() == &runtime_ && "Channel used outside its runtime");
    return w->index();
  }
  Ring& ring(size_t from, size_t to) { return *rings_[from * n_ + to]; }

  // Producer. Moves from `message` only on success.
  bool try_push(Ring& r, T& message) {
    const uint64_t tail = r.tail.load(std::memory_order_relaxed);  // our own variable
    if (tail - r.cached_head > r.mask) {
      // Acquire pairs with the consumer's release store of head: its move out of the slot
      // happens before we construct into it again.
      r.cached_head = r.head.load(std::memory_order_acquire);
      if (tail - r.cached_head > r.mask) return false;
    }
    r.slots[tail & r.mask].emplace(std::move(message));
    // Release pairs with the consumer's acquire load of tail: the slot is written first.
    r.tail.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Producer: the ring is full, or earlier messages are still travelling through the inbox.
  void overflow(Ring& r, T message) {
    ++r.overflow_sent;
    r.overflowed.bump();
    // The inbox's mutex orders our earlier tail stores before the job runs, so the ring drain
    // inside it sees every message we pushed before this one.
    runtime_.post_to(r.to, [this, &r, m = std::move(message)]() mutable {
      take_available(r, SIZE_MAX);
      r.handled.bump();
      handler_(r.from, std::move(m));
      // Release pairs with the producer's acquire load in send().
      r.overflow_done.store(r.overflow_done.load(std::memory_order_relaxed) + 1,
                            std::memory_order_release);
      flush_worker(r.to);
    });
  }

  // Producer: publish every dirty ring of worker `from`.
  void flush_worker(size_t from) {
    Producer& p = producers_[from];
    for (size_t to : p.dirty) {
      Ring& r = ring(from, to);
      r.dirty = false;
      // acq_rel exchange: the release half publishes our tail stores to the consumer's end-of-
      // drain exchange; see "Memory orders" in the file comment.
      if (!r.scheduled.exchange(true, std::memory_order_acq_rel)) {
        r.wakeups.bump();
        runtime_.post_to(to, [this, &r] { drain(r); });
      }
    }
    p.dirty.clear();
  }

  // Consumer: handles up to `budget` messages that are in the ring now; returns how many.
  size_t take_available(Ring& r, size_t budget) {
    uint64_t head = r.head.load(std::memory_order_relaxed);  // our own variable
    // Acquire pairs with the producer's release store of tail: the slots up to it are written.
    const uint64_t tail = r.tail.load(std::memory_order_acquire);
    size_t n = 0;
    while (head != tail && n < budget) {
      std::optional<T>& slot = r.slots[head & r.mask];
      T message = std::move(*slot);
      slot.reset();
      ++head;
      // Release pairs with the producer's acquire load of head: the slot is free once this is
      // seen. Stored per message so a producer waiting for room gets it as early as possible.
      r.head.store(head, std::memory_order_release);
      r.handled.bump();
      handler_(r.from, std::move(message));
      ++n;
    }
    return n;
  }

  // Consumer: the drain job.
  void drain(Ring& r) {
    size_t budget = drain_budget(r);
    for (;;) {
      budget -= take_available(r, budget);
      if (budget == 0) {
        // Still `scheduled`: producers will not post again, so we must come back.
        Worker::current()->defer([this, &r] { drain(r); });
        break;
      }
      // Ring looked empty. Clear the flag, then re-check tail: a push that our load missed is
      // either visible now (the producer's exchange came first and ours acquired it) or its
      // producer's exchange will read false and post a new drain.
      r.scheduled.exchange(false, std::memory_order_acq_rel);
      if (r.tail.load(std::memory_order_acquire) == r.head.load(std::memory_order_relaxed)) break;
      // Not empty after all: take the job back, unless the producer already posted a new one.
      if (r.scheduled.exchange(true, std::memory_order_acq_rel)) break;
    }
    flush_worker(r.to);  // replies the handler sent go out together
  }

  Runtime& runtime_;
  const Handler handler_;
  const size_t n_;
  std::vector<std::unique_ptr<Ring>> rings_;  // [from * n + to]
  std::unique_ptr<Producer[]> producers_;
};

}  // namespace shardloop
