// StealCoordinator: caps how many idle workers search other workers' deques at once.
//
// When many workers go idle together, letting all of them scan every victim turns a little
// spare work into N^2 CASes on the same few `top` words. Like Tokio, at most ceil(N/2) workers
// search at a time; a worker refused a search permit parks straight away, since the searchers
// already cover the victims it would have visited.
//
// The integration (the worker loop, not this file) also needs the "last searcher" signal:
// a searcher that finds work and stops searching while it was the last one should wake a
// parked worker, because work arriving meanwhile may have skipped waking anyone on the grounds
// that someone was searching. end_search() returns that signal.
//
//   if (auto permit = coordinator.try_begin_search()) {
//     ... steal ...
//     if (permit->end() && found_work) wake_one_parked_worker();
//   }
//
// Thread-safety: every method may be called from any thread. The counter is seq_cst because
// the integration pairs it with the run queues in the park handshake (producer: push, then read
// searching(); searcher: end_search(), then re-check the queues); a weaker order would let
// both sides miss each other.
#pragma once

#include <atomic>
#include <cassert>
#include <cstddef>
#include <optional>
#include <utility>

namespace shardloop {

class StealCoordinator {
 public:
  // RAII search permit: ends the search on destruction unless end() was called.
  class Permit {
   public:
    Permit(Permit&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    Permit& operator=(Permit&& other) noexcept {
      if (this != &other) {
        end();
        owner_ = std::exchange(other.owner_, nullptr);
      }
      return *this;
    }
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit() { end(); }

    // Stops searching now; true if this was the last searcher. Later calls return false.
    bool end() {
      if (owner_ == nullptr) return false;
      return std::exchange(owner_, nullptr)->end_search();
    }

   private:
    friend class StealCoordinator;
    explicit Permit(StealCoordinator* owner) : owner_(owner) {}
    StealCoordinator* owner_;
  };

  explicit StealCoordinator(size_t workers) : max_searching_((workers + 1) / 2) {
    assert(workers > 0);
  }
  StealCoordinator(const StealCoordinator&) = delete;
  StealCoordinator& operator=(const StealCoordinator&) = delete;

  // A permit if fewer than max_searching() workers are searching, else nullopt.
  std::optional<Permit> try_begin_search() {
    if (!begin_search()) return std::nullopt;
    return Permit(this);
  }

  // Unwrapped form of the above for callers that track the state themselves: true means the
  // caller is now searching and must call end_search() exactly once.
  bool begin_search() {
    size_t n = searching_.load(std::memory_order_seq_cst);
    do {
      if (n >= max_searching_) return false;
    } while (!searching_.compare_exchange_weak(n, n + 1, std::memory_order_seq_cst));
    return true;
  }

  // Returns true if the caller was the last searcher.
  bool end_search() {
    const size_t before = searching_.fetch_sub(1, std::memory_order_seq_cst);
    assert(before > 0 && "end_search without begin_search");
    return before == 1;
  }

  size_t searching() const { return searching_.load(std::memory_order_seq_cst); }
  size_t max_searching() const { return max_searching_; }

 private:
  const size_t max_searching_;
  std::atomic<size_t> searching_{0};
};

}  // namespace shardloop
