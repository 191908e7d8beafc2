#include "runtime/poll_mode.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace shardloop {

std::string_view poll_mode_name(PollMode mode) {
  switch (mode) {
    case PollMode::kSharded:
      return "sharded";
    case PollMode::kGlobal:
      return "global";
    case PollMode::kThrottled:
      return "throttled";
    case PollMode::kAdaptive:
      return "adaptive";
  }
  return "unknown";
}

absl::StatusOr<PollMode> parse_poll_mode(std::string_view name) {
  for (PollMode mode : kAllPollModes) {
    if (name == poll_mode_name(mode)) return mode;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown poll mode '", std::string(name),
                                                 "' (expected sharded, global, throttled or "
                                                 "adaptive)"));
}

}  // namespace shardloop
