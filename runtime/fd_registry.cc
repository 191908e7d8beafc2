#include "runtime/fd_registry.h"

namespace shardloop {

Token FdRegistry::add(IoHandle* handle) {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  slots_[slot].handle = handle;
  ++live_;
  return Token{slot, slots_[slot].generation, 0};
}

void FdRegistry::release(Token token) {
  if (token.slot >= slots_.size()) return;
  Slot& s = slots_[token.slot];
  if (s.handle == nullptr || s.generation != (token.generation & Token::kGenerationMask)) return;
  s.handle = nullptr;
  s.generation = (s.generation + 1) & Token::kGenerationMask;
  free_.push_back(token.slot);
  --live_;
}

}  // namespace shardloop
