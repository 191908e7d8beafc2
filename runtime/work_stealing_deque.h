// WorkStealingDeque: a fixed-capacity Chase-Lev deque of pointer-sized items, split into one
// owner-only `DequeLocal` handle and any number of any-thread `DequeStealer` handles.
//
//   auto [local, stealer] = make_work_stealing_deque<Job*>();
//   if (!local.push(job)) overflow.push_back(job);   // owner: full -> the caller keeps it
//   std::optional<Job*> mine = local.pop();          // owner: LIFO, bottom end
//   std::optional<Job*> theirs = stealer.steal();    // any thread: FIFO, top end
//   stealer.steal_half_into(my_local);               // any thread that owns `my_local`
//
// The algorithm is Lê, Pop, Cohen, Zappa Nardelli, "Correct and Efficient Work-Stealing for
// Weak Memory Models" (PPoPP 2013), figure 1, with two deliberate changes:
//
// 1. Fixed capacity, overflow reported to the caller (push() returns false and the item stays
//    with the caller). Growing by copying means a thief may still be reading the old array, so
//    old arrays must be kept until the deque dies (Lê et al. leak them) or reclaimed with
//    hazard pointers or epochs. A fixed ring needs neither, never allocates after construction,
//    and bounds the work a thief can see. A worker with more runnable tasks than the ring holds
//    is saturated anyway: it keeps the excess in its private FIFO and refills the ring as it
//    drains it (Tokio's local queue is fixed at 256 for the same reasons).
//
// 2. No standalone fences. ThreadSanitizer does not model atomic_thread_fence (GCC rejects it
//    under -fsanitize=thread with -Werror=tsan), so the paper's fences become orders on the
//    adjacent operations, each at least as strong:
//      push:  fence(release); bottom.store(relaxed)    ->  bottom.store(release)
//      pop:   bottom.store(relaxed); fence(seq_cst); top.load(relaxed)
//                                                      ->  bottom.store(seq_cst); top.load(seq_cst)
//      steal: top.load(acquire); fence(seq_cst); bottom.load(acquire)
//                                                      ->  top.load(seq_cst); bottom.load(seq_cst)
//    The fences exist for one race: the owner popping the last item while a thief steals it.
//    With the four operations seq_cst they lie in one total order S consistent with program
//    order. If the owner's top load misses a thief's CAS (so the owner believes t < b and takes
//    slot b without a CAS), that load precedes the thief's top load in S; the owner's bottom
//    store precedes its top load; the thief's bottom load follows its top load. So the thief's
//    bottom load follows the owner's bottom store in S and reads b (or later), sees t >= b, and
//    does not take slot b. The cost on x86 is the same as the paper's (the seq_cst store is an
//    XCHG where the fence was an MFENCE; seq_cst loads are plain loads).
//    Every owner store to `bottom` is at least `release`, including the two "restore" stores
//    the paper leaves relaxed: a thief may read any of them and then read a slot below it, and
//    since C++20 a later plain store no longer continues the release sequence of an earlier
//    one, so only its own release makes the slot visible.
//
// steal_half_into() takes ceil(n/2) items (at most `max_batch`) with one CAS per item. A single
// CAS claiming a whole range would be unsound here: the owner pops without a CAS whenever it
// sees top < bottom, so between a thief reading `bottom` and CASing `top` the owner can pop
// into the range the thief is about to claim. Making the owner CAS on every pop would fix that
// at the price of the owner's fast path (Go's and Tokio's queues pay it, being FIFO for the
// owner too). A bounded batch keeps the cost of one steal bounded.
//
// Items must be trivially copyable and fit a lock-free atomic (pointers, coroutine handles,
// small integers). Capacity is a power of two; SHARDLOOP_SMALL_QUEUES (a test build flag)
// shrinks the default from 256 to 4 so tests reach the full/empty/wrap edges constantly.
//
// Thread-safety: DequeLocal is move-only and used by one thread at a time (the owner);
// DequeStealer is copyable and all its methods may run on any threads concurrently with each
// other and with the owner. Both keep the ring alive (shared ownership).
#pragma once

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace shardloop {

#ifdef SHARDLOOP_SMALL_QUEUES
inline constexpr size_t kDefaultDequeCapacity = 4;
#else
// Tokio's figure: enough for a worker's burst of wakeups, small enough (2 KiB of pointers) to
// stay in L1/L2 and to keep the amount of work one steal can see modest.
inline constexpr size_t kDefaultDequeCapacity = 256;
#endif

// Upper bound on one steal_half_into(). Each stolen item costs one CAS on the victim's `top`;
// 32 items keep one steal around a microsecond while giving an idle worker enough to run for a
// while before it needs to look again.
inline constexpr size_t kMaxStealBatch = std::min<size_t>(32, kDefaultDequeCapacity / 2);

template <typename T>
class DequeLocal;
template <typename T>
class DequeStealer;

// Creates a deque of `capacity` slots (a power of two, at least 2).
template <typename T>
std::pair<DequeLocal<T>, DequeStealer<T>> make_work_stealing_deque(
    size_t capacity = kDefaultDequeCapacity);

namespace internal {

// 128, not 64: x86's adjacent-line prefetcher pulls cache lines in pairs, so two hot words 64
// bytes apart still ping-pong (crossbeam's CachePadded uses 128 for the same reason).
inline constexpr size_t kFalseSharingRange = 128;

template <typename T>
class DequeRing {
 public:
  static_assert(std::is_trivially_copyable_v<T>, "deque items are copied through std::atomic<T>");
  static_assert(std::atomic<T>::is_always_lock_free, "deque items must be pointer-sized");

  explicit DequeRing(size_t capacity)
      : mask_(static_cast<int64_t>(capacity) - 1), slots_(new std::atomic<T>[capacity]) {
    assert(capacity >= 2 && (capacity & (capacity - 1)) == 0 && "capacity must be a power of two");
  }

  int64_t capacity() const { return mask_ + 1; }
  std::atomic<T>& slot(int64_t index) { return slots_[index & mask_]; }

  // Indices count every push and every steal since construction; slot = index & mask_. Signed,
  // so the owner's tentative `bottom - 1` on an empty deque compares below `top` (the paper's
  // size_t version needs a special case there). 2^63 operations do not overflow in practice.
  //
  // `top` is written by thieves' CASes and by the owner's last-item CAS; `bottom` only by the
  // owner. On separate lines so the owner's push/pop stores do not invalidate the line thieves
  // CAS on, and vice versa.
  alignas(kFalseSharingRange) std::atomic<int64_t> top{0};
  alignas(kFalseSharingRange) std::atomic<int64_t> bottom{0};

 private:
  // Read-only after construction; on a line of their own so that reading them never misses
  // because `top` or `bottom` was just written.
  alignas(kFalseSharingRange) const int64_t mask_;
  const std::unique_ptr<std::atomic<T>[]> slots_;
};

}  // namespace internal

// The owner's end. Push and pop at the bottom.
template <typename T>
class DequeLocal {
 public:
  DequeLocal(DequeLocal&&) noexcept = default;
  DequeLocal& operator=(DequeLocal&&) noexcept = default;
  DequeLocal(const DequeLocal&) = delete;
  DequeLocal& operator=(const DequeLocal&) = delete;

  // Appends `item` at the bottom. Returns false, leaving the deque unchanged, when it is full;
  // the caller keeps the item (overflow is the caller's policy).
  [[nodiscard]] bool push(T item) { return push_with(item, std::memory_order_release); }

  // push() whose publishing store is seq_cst, for callers that follow the push with a seq_cst
  // load in a Dekker-style handshake ("did a consumer go to sleep?"): the store and that load
  // are then ordered, which a release store does not guarantee. See blocking_pool.cc.
  [[nodiscard]] bool push_seq_cst(T item) { return push_with(item, std::memory_order_seq_cst); }

  // Removes the most recently pushed item, if thieves have not taken everything.
  std::optional<T> pop() {
    internal::DequeRing<T>& r = *ring_;
    const int64_t b = r.bottom.load(std::memory_order_relaxed) - 1;  // only we write bottom
    // Reserve slot b before looking at top (seq_cst store + seq_cst load: see the file comment).
    r.bottom.store(b, std::memory_order_seq_cst);
    int64_t t = r.top.load(std::memory_order_seq_cst);
    if (t > b) {
      // Empty. Restore bottom = t. Release: a thief may read this value (file comment).
      r.bottom.store(b + 1, std::memory_order_release);
      return std::nullopt;
    }
    // Relaxed: the slot was written by this thread.
    T item = r.slot(b).load(std::memory_order_relaxed);
    if (t < b) return item;  // more than one item: thieves stop at top < bottom = b
    // The last item: race the thieves for it on `top`.
    const bool won = r.top.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                                   std::memory_order_relaxed);
    // Either way the deque is now empty at index b + 1. Release, as above.
    r.bottom.store(b + 1, std::memory_order_release);
    if (!won) return std::nullopt;
    return item;
  }

  // Items in the deque as the owner sees them; thieves may have taken some since (never more
  // are present than this).
  size_t size() const {
    // Relaxed: a count, no slot is read through it.
    const int64_t b = ring_->bottom.load(std::memory_order_relaxed);
    const int64_t t = ring_->top.load(std::memory_order_relaxed);
    return b > t ? static_cast<size_t>(b - t) : 0;
  }
  bool empty() const { return size() == 0; }
  size_t capacity() const { return static_cast<size_t>(ring_->capacity()); }
  // Pushes that are certain to succeed from now on (thieves only ever make more room).
  size_t free_slots() const { return capacity() - size(); }

  DequeStealer<T> stealer() const { return DequeStealer<T>(ring_); }

 private:
  template <typename U>
  friend std::pair<DequeLocal<U>, DequeStealer<U>> make_work_stealing_deque(size_t capacity);

  explicit DequeLocal(std::shared_ptr<internal::DequeRing<T>> ring) : ring_(std::move(ring)) {}

  bool push_with(T item, std::memory_order publish) {
    internal::DequeRing<T>& r = *ring_;
    const int64_t b = r.bottom.load(std::memory_order_relaxed);  // only we write bottom
    // Acquire pairs with the seq_cst (hence release) CAS by which a thief took index t - 1 (and,
    // through the CASes' release sequence, every earlier index): its read of the slot we are
    // about to overwrite happens-before our write, so it cannot see the new item.
    const int64_t t = r.top.load(std::memory_order_acquire);
    if (b - t >= r.capacity()) return false;
    // Relaxed: published by the store to bottom below.
    r.slot(b).store(item, std::memory_order_relaxed);
    // Release (or seq_cst) pairs with the thieves' seq_cst load of bottom: a thief that sees
    // bottom > b sees the item in slot b.
    r.bottom.store(b + 1, publish);
    return true;
  }

  std::shared_ptr<internal::DequeRing<T>> ring_;
};

// A thief's end. Takes from the top (oldest first).
template <typename T>
class DequeStealer {
 public:
  DequeStealer() = default;  // steals nothing until assigned

  // Takes the oldest item, or returns nullopt if the deque is empty. A lost CAS means another
  // thread took that item, so the loop is lock-free: it retries only after someone progressed.
  std::optional<T> steal() {
    if (!ring_) return std::nullopt;
    internal::DequeRing<T>& r = *ring_;
    for (;;) {
      int64_t t = r.top.load(std::memory_order_seq_cst);
      const int64_t b = r.bottom.load(std::memory_order_seq_cst);
      if (t >= b) return std::nullopt;
      // Relaxed: the load of bottom above (acquire, being seq_cst) synchronized with the
      // owner's release store of bottom > t, which follows the owner's write of this slot. If
      // the owner has since wrapped around and overwritten it, top has moved and our CAS fails.
      T item = r.slot(t).load(std::memory_order_relaxed);
      if (r.top.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
        return item;
      }
    }
  }

  // Moves about half of the items, oldest first, into `dst`: ceil(size / 2), but no more than
  // `max_batch` and no more than `dst` can take. Returns how many moved. The caller must own
  // `dst` (it is the thief's own deque) and must not pass the victim's own Local.
  size_t steal_half_into(DequeLocal<T>& dst, size_t max_batch = kMaxStealBatch) {
    if (!ring_) return 0;
    const int64_t t = ring_->top.load(std::memory_order_seq_cst);
    const int64_t b = ring_->bottom.load(std::memory_order_seq_cst);
    if (t >= b) return 0;
    const size_t n = static_cast<size_t>(b - t);
    const size_t want = std::min({n - n / 2, max_batch, dst.free_slots()});
    size_t moved = 0;
    while (moved < want) {
      std::optional<T> item = steal();
      if (!item) break;
      // Cannot fail: only this thread pushes to dst, and free_slots() was a lower bound.
      [[maybe_unused]] const bool pushed = dst.push(*item);
      assert(pushed && "steal_half_into: destination filled up underneath its owner");
      ++moved;
    }
    return moved;
  }

  // True if the deque held no item at the moment of the two loads. seq_cst, so a consumer can
  // use it as the re-check half of a sleep handshake with push_seq_cst().
  bool empty() const {
    if (!ring_) return true;
    const int64_t t = ring_->top.load(std::memory_order_seq_cst);
    const int64_t b = ring_->bottom.load(std::memory_order_seq_cst);
    return t >= b;
  }

  // Approximate item count, for choosing a victim. Relaxed: nothing is read through it.
  size_t size_hint() const {
    if (!ring_) return 0;
    const int64_t t = ring_->top.load(std::memory_order_relaxed);
    const int64_t b = ring_->bottom.load(std::memory_order_relaxed);
    return b > t ? static_cast<size_t>(b - t) : 0;
  }

 private:
  friend class DequeLocal<T>;
  template <typename U>
  friend std::pair<DequeLocal<U>, DequeStealer<U>> make_work_stealing_deque(size_t capacity);

  explicit DequeStealer(std::shared_ptr<internal::DequeRing<T>> ring) : ring_(std::move(ring)) {}

  std::shared_ptr<internal::DequeRing<T>> ring_;
};

template <typename T>
std::pair<DequeLocal<T>, DequeStealer<T>> make_work_stealing_deque(size_t capacity) {
  auto ring = std::make_shared<internal::DequeRing<T>>(capacity);
  DequeStealer<T> stealer(ring);
  return {DequeLocal<T>(std::move(ring)), std::move(stealer)};
}

}  // namespace shardloop
