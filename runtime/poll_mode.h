// Poll modes: how a runtime's workers find out which of their fds are ready.
//
//   sharded    every worker polls its own poller for the fds it owns (epoll or io_uring).
//   global     one epoll instance shared by every worker, as the Go runtime's netpoller: every
//              worker polls it, non-blocking between tasks and blocking when idle.
//   throttled  one shared epoll instance, but at most one worker polls it at any moment (it
//              holds the poller token); the others run what it found (Go's mitigation).
//   adaptive   sharded pollers, plus a measured spin-before-park: busy on a spare CPU, by
//              yielding the CPU when none is spare (see adaptive_park.h).
//
// Whatever the mode, a connection is owned by one worker, and only its owner runs its handlers:
// in the shared modes the worker that fetched an event hands it to the owner (shared_epoll.h),
// so the same user code and the same tests run in every mode. global and throttled need the
// epoll backend (a shared io_uring is not a design anyone runs); asking for them with io_uring
// is an error, and `auto` resolves to epoll in those modes.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"

namespace shardloop {

enum class PollMode { kSharded, kGlobal, kThrottled, kAdaptive };

inline constexpr PollMode kAllPollModes[] = {PollMode::kSharded, PollMode::kGlobal,
                                             PollMode::kThrottled, PollMode::kAdaptive};

std::string_view poll_mode_name(PollMode mode);
// Accepts "sharded", "global", "throttled", "adaptive"; anything else is InvalidArgument naming
// the choices.
absl::StatusOr<PollMode> parse_poll_mode(std::string_view name);
// True for the modes that share one epoll instance between workers.
inline bool uses_shared_epoll(PollMode mode) {
  return mode == PollMode::kGlobal || mode == PollMode::kThrottled;
}

}  // namespace shardloop
