// StealHintRing: how thieves tell a worker that they started one of its affinity roots.
//
// A stealable root spawned with a non-zero affinity (Worker::spawn_stealable) remembers the
// worker it was spawned on, its origin. When another worker starts it (it was stolen, possibly
// twice over), that worker pushes {affinity, itself} here, on the origin's ring; the origin
// takes the records off in its run phase and folds them into its StealHintLedger, which only
// it touches. So the one piece of state that several threads share is this ring, and the
// ledger that the rebalancer reads (on the origin, through its inbox) is owner-only.
//
// A bounded multi-producer single-consumer ring (Vyukov's bounded queue with the consumer
// side specialised to one thread). Each slot carries a sequence number that says whose turn it
// is: `pos` means free for the producer that claims position `pos`, `pos + 1` means holding
// that producer's record, ready for the consumer.
//
// Full ring: the record is dropped and counted. A hint is evidence, not work: losing some
// under a burst only delays a decision, while waiting would stall a thief on its victim.
//
// Memory orders (pairs named at their use):
//  - a producer claims a position with a relaxed CAS on `tail_`: the CAS only arbitrates
//    between producers; the slot's sequence carries every happens-before edge;
//  - producer: acquire load of the slot's sequence (pairs with the consumer's release store
//    that freed the slot, so the consumer's read of the previous record happens before this
//    write), write the record, release store of `pos + 1` (publishes the record);
//  - consumer: acquire load of the sequence (pairs with that release), read the record,
//    release store of `pos + capacity` (frees the slot for the producer one lap later).
// A producer that has claimed a slot but not yet published it holds up the records behind it
// until it does; the consumer simply stops and looks again in its next run phase.
//
// Thread-safety: push() from any thread; pop() from the owning worker only; dropped() any.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

namespace shardloop {

struct StealRecord {
  uint64_t affinity = 0;
  uint32_t thief = 0;  // index of the worker that started the root
};

class StealHintRing {
 public:
  // 256 records: several steal batches (at most 128 roots each) between two run phases of the
  // origin, at 6 KiB per worker.
  static constexpr size_t kCapacity = 256;

  StealHintRing() : slots_(std::make_unique<Slot[]>(kCapacity)) {
    for (size_t i = 0; i < kCapacity; ++i) slots_[i].seq.store(i, std::memory_order_relaxed);
  }
  StealHintRing(const StealHintRing&) = delete;
  StealHintRing& operator=(const StealHintRing&) = delete;

  // Any thread. False (and counted) when the ring is full.
  bool push(StealRecord record) {
    uint64_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Slot& slot = slots_[pos & kMask];
      // Acquire: pairs with the consumer's release in pop() that freed this slot.
      const uint64_t seq = slot.seq.load(std::memory_order_acquire);
      const int64_t lag = static_cast<int64_t>(seq - pos);
      if (lag == 0) {
        // Relaxed: the slot's sequence, not this CAS, orders the record (see the file comment).
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          slot.record = record;
          // Release: pairs with the consumer's acquire in pop(); publishes the record.
          slot.seq.store(pos + 1, std::memory_order_release);
          return true;
        }
        // `pos` was reloaded by the failed CAS.
      } else if (lag < 0) {
        // The slot still holds the record from one lap ago: full.
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return false;
      } else {
        pos = tail_.load(std::memory_order_relaxed);  // another producer took `pos`
      }
    }
  }

  // Owner only. The oldest published record, or nullopt when there is none (yet).
  std::optional<StealRecord> pop() {
    Slot& slot = slots_[head_ & kMask];
    // Acquire: pairs with the producer's release in push().
    if (slot.seq.load(std::memory_order_acquire) != head_ + 1) return std::nullopt;
    const StealRecord record = slot.record;
    // Release: pairs with the acquire of the producer that claims this slot one lap later.
    slot.seq.store(head_ + kCapacity, std::memory_order_release);
    ++head_;
    return record;
  }

  // Records dropped because the ring was full. Relaxed: a statistic.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  static_assert((kCapacity & (kCapacity - 1)) == 0, "capacity must be a power of two");
  static constexpr uint64_t kMask = kCapacity - 1;

  struct Slot {
    std::atomic<uint64_t> seq{0};
    StealRecord record;
  };

  std::unique_ptr<Slot[]> slots_;
  // Producers' end and the consumer's end on lines of their own: thieves hammer `tail_` while
  // the owner advances `head_`.
  alignas(64) std::atomic<uint64_t> tail_{0};
  std::atomic<uint64_t> dropped_{0};
  alignas(64) uint64_t head_ = 0;  // owner only
};

}  // namespace shardloop
