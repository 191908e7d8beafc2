// FdRegistry: a worker's table from poller tokens to IoHandles.
//
// Each registered fd occupies a slot; its token is {slot, generation} (token.h). Releasing a
// slot bumps its generation, so any event carrying the old token (still in the batch being
// dispatched, or an io_uring completion that arrives later) fails the lookup and is dropped:
// an event can never reach a handle that did not ask for it. Freed slots are reused LIFO to keep
// the table dense.
//
// Thread-safety: owner worker only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "runtime/io_handle.h"
#include "runtime/token.h"

namespace shardloop {

class FdRegistry {
 public:
  Token add(IoHandle* handle);
  // Forgets the handle behind `token`. Releasing a stale token is a no-op.
  void release(Token token);
  // The live handle for `token`, or nullptr when the token is stale or unknown.
  IoHandle* find(uint64_t token) const;

  size_t live() const { return live_; }

 private:
  struct Slot {
    IoHandle* handle = nullptr;
    uint32_t generation = 0;
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  size_t live_ = 0;
};

inline IoHandle* FdRegistry::find(uint64_t bits) const {
  Token t = Token::decode(bits);
  if (t.slot >= slots_.size()) return nullptr;
  const Slot& s = slots_[t.slot];
  return s.generation == t.generation ? s.handle : nullptr;
}

}  // namespace shardloop
