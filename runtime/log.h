// Minimal leveled logging to stderr, plus a rate limiter for messages that a hot failure
// path (accept under EMFILE, say) would otherwise print thousands of times a second.
//
// Thread-safety: every function may be called from any thread; each message is written with
// one write(2) so lines from different threads do not interleave.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "absl/strings/str_format.h"

namespace shardloop {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below this level are dropped. Default kInfo;
// SHARDLOOP_LOG_LEVEL=debug|info|warning|error in the environment overrides it at start-up.
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);
void log_line(LogLevel level, std::string_view message);

template <typename... Args>
void log(LogLevel level, const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (log_enabled(level)) log_line(level, absl::StrFormat(format, args...));
}

// Allows one event per interval; counts what it suppressed so the next allowed line can say so.
// Thread-safety: any thread; a relaxed compare-exchange on the last-allowed time is enough
// because the only guarantee offered is "at most about one per interval".
class RateLimiter {
 public:
  explicit RateLimiter(std::chrono::nanoseconds interval) : interval_ns_(interval.count()) {}
  // Returns true when the caller may log now; *suppressed receives how many calls were refused
  // since the last allowed one.
  bool allow(uint64_t* suppressed);

 private:
  const int64_t interval_ns_;
  std::atomic<int64_t> last_ns_{INT64_MIN / 2};
  std::atomic<uint64_t> suppressed_{0};
};

}  // namespace shardloop
