// Keyspace: one shard of examples/kv_server's data, string keys to string values with optional
// expiry times. It knows nothing of sockets, workers or RESP: the service runs one per worker
// and routes each key to the shard that owns it.
//
// Expiry follows redis: a key whose deadline has passed is gone (lazy expiry on every access),
// and sweep() removes due keys that nobody touches (the service runs it periodically on the
// owning worker). Times are milliseconds on a monotonic clock, passed in by the caller, so tests
// drive the clock by hand.
//
// Thread-safety: owner worker only, except stats(), which any thread may read: its counters
// have one writer (the owner) and are relaxed atomics, a snapshot for INFO and not a
// synchronisation point.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace shardloop::examples::kv {

enum class SetCondition : uint8_t { kAlways, kIfAbsent /* NX */, kIfPresent /* XX */ };
enum class ExpireCondition : uint8_t { kAlways, kNx, kXx, kGt, kLt };
enum class IncrStatus : uint8_t { kOk, kNotInteger, kOverflow };

struct KeyspaceStats {
  uint64_t keys = 0;           // keys stored (expired ones not yet removed included)
  uint64_t volatile_keys = 0;  // of which with an expiry time
  uint64_t hits = 0;           // reads that found their key
  uint64_t misses = 0;         // reads that did not
  uint64_t expired = 0;        // keys removed because their time had come
};

class Keyspace {
 public:
  // No expiry time.
  static constexpr int64_t kNoExpiry = 0;

  // The value, or nullptr when absent (or expired). Valid until the next change to this key.
  const std::string* get(std::string_view key, int64_t now);
  // Stores `value`, clearing any expiry, then sets `expire_at` (kNoExpiry: none). Returns false,
  // changing nothing, when `condition` does not hold.
  bool set(std::string_view key, std::string_view value, SetCondition condition, int64_t expire_at,
           int64_t now);
  bool del(std::string_view key, int64_t now);
  bool exists(std::string_view key, int64_t now);
  // Adds `delta` to the integer stored at `key` (absent counts as 0); keeps the expiry.
  IncrStatus incr_by(std::string_view key, int64_t delta, int64_t now, int64_t* result);
  // Redis EXPIRE at an absolute time: 0 when the key is absent or `condition` fails, else 1
  // (a time not after `now` deletes the key).
  bool expire(std::string_view key, int64_t expire_at, ExpireCondition condition, int64_t now);
  // Milliseconds left: -2 if absent, -1 if it has no expiry.
  int64_t ttl_ms(std::string_view key, int64_t now);
  // Keys stored, after removing every due one.
  size_t size(int64_t now);
  void clear();
  // Removes up to `limit` due keys; returns how many.
  size_t sweep(int64_t now, size_t limit);
  bool has_volatile_keys() const { return !deadlines_.empty(); }

  KeyspaceStats stats() const;

 private:
  struct Entry {
    std::string value;
    int64_t expire_at = kNoExpiry;
  };
  using Map = absl::flat_hash_map<std::string, Entry>;

  // The live entry for `key` (an expired one is removed first), or end().
  Map::iterator find_live(std::string_view key, int64_t now);
  void set_expiry(Map::iterator it, int64_t expire_at);
  void erase(Map::iterator it);
  void publish_sizes();

  struct Counter {
    std::atomic<uint64_t> v{0};
    void add(uint64_t n = 1) {
      v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void set(uint64_t n) { v.store(n, std::memory_order_relaxed); }
    uint64_t get() const { return v.load(std::memory_order_relaxed); }
  };

  Map map_;
  // (deadline, key) of every key with an expiry, earliest first: what sweep() walks.
  std::set<std::pair<int64_t, std::string>> deadlines_;
  Counter keys_, volatile_keys_, hits_, misses_, expired_;
};

// Redis's string2ll: optional '-', no '+', no spaces, no leading zeros, fits int64.
std::optional<int64_t> parse_int64(std::string_view s);

}  // namespace shardloop::examples::kv
