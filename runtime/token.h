// Poller tokens: what a worker hands its poller for each registered fd (epoll_data.u64,
// io_uring user_data) so that an event can be traced back to its owner, or recognised as stale.
//
// Bit layout of the 64-bit token:
//
//   63      56 55                    32 31                                 0
//   +---------+------------------------+-----------------------------------+
//   |   op    |  generation (24 bits)  |        slot index (32 bits)       |
//   +---------+------------------------+-----------------------------------+
//
// - slot: index into the worker's FdRegistry.
// - generation: the slot's generation when the token was issued. Removing an fd bumps it, so
//   an event fetched in the same batch (or a late io_uring completion) for the old occupant no
//   longer matches and is dropped instead of being dispatched to whoever reuses the slot.
//   24 bits wrap after 16.7M reuses of one slot; a stale event would have to survive that long.
// - op: free for backends that need to tell several operations of one fd apart (io_uring); 0
//   for readiness events.
#pragma once

#include <cstdint>

namespace shardloop {

struct Token {
  static constexpr uint32_t kGenerationMask = (1u << 24) - 1;

  uint32_t slot = 0;
  uint32_t generation = 0;  // only the low 24 bits are kept
  uint8_t op = 0;

  constexpr uint64_t encode() const {
    return (uint64_t{op} << 56) | (uint64_t{generation & kGenerationMask} << 32) | slot;
  }
  static constexpr Token decode(uint64_t bits) {
    return Token{static_cast<uint32_t>(bits), static_cast<uint32_t>(bits >> 32) & kGenerationMask,
                 static_cast<uint8_t>(bits >> 56)};
  }
  friend constexpr bool operator==(const Token&, const Token&) = default;
};

// Reserved for the poller's own wakeup fd; never issued by an FdRegistry.
inline constexpr uint64_t kWakeupToken = ~uint64_t{0};
// Reserved for operations whose completions the poller swallows (cancellations, removals).
inline constexpr uint64_t kIgnoreToken = ~uint64_t{0} - 1;

inline uint64_t with_op(uint64_t token, uint8_t op) {
  return (token & ~(uint64_t{0xff} << 56)) | (uint64_t{op} << 56);
}
inline uint8_t op_of(uint64_t token) { return static_cast<uint8_t>(token >> 56); }

}  // namespace shardloop
