#include "examples/kv/kv_store.h"

#include <charconv>
#include <limits>

#include "absl/strings/string_view.h"

namespace shardloop::examples::kv {
namespace {

// The Debian Abseil's string_view is its own type: the map's heterogeneous lookup takes it.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

std::optional<int64_t> parse_int64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  if (s == "0") return 0;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size() || s[i] < '1' || s[i] > '9') return std::nullopt;
  uint64_t v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(s[i] - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  if (s[0] == '-') {
    if (v > kMax + 1) return std::nullopt;
    return static_cast<int64_t>(0 - v);
  }
  if (v > kMax) return std::nullopt;
  return static_cast<int64_t>(v);
}

Keyspace::Map::iterator Keyspace::find_live(std::string_view key, int64_t now) {
  auto it = map_.find(av(key));
  // Redis's rule: a key is expired once now is past its deadline.
  if (it != map_.end() && it->second.expire_at != kNoExpiry && now > it->second.expire_at) {
    erase(it);
    expired_.add();
    publish_sizes();
    return map_.end();
  }
  return it;
}

void Keyspace::set_expiry(Map::iterator it, int64_t expire_at) {
  Entry& e = it->second;
  if (e.expire_at == expire_at) return;
  if (e.expire_at != kNoExpiry) deadlines_.erase({e.expire_at, it->first});
  e.expire_at = expire_at;
  if (expire_at != kNoExpiry) deadlines_.insert({expire_at, it->first});
}

void Keyspace::erase(Map::iterator it) {
  if (it->second.expire_at != kNoExpiry) deadlines_.erase({it->second.expire_at, it->first});
  map_.erase(it);
}

void Keyspace::publish_sizes() {
  keys_.set(map_.size());
  volatile_keys_.set(deadlines_.size());
}

const std::string* Keyspace::get(std::string_view key, int64_t now) {
  auto it = find_live(key, now);
  if (it == map_.end()) {
    misses_.add();
    return nullptr;
  }
  hits_.add();
  return &it->second.value;
}

bool Keyspace::set(std::string_view key, std::string_view value, SetCondition condition,
                   int64_t expire_at, int64_t now) {
  auto it = find_live(key, now);
  const bool present = it != map_.end();
  if ((condition == SetCondition::kIfAbsent && present) ||
      (condition == SetCondition::kIfPresent && !present)) {
    return false;
  }
  if (!present) it = map_.try_emplace(std::string(key)).first;
  it->second.value.assign(value);
  set_expiry(it, expire_at);
  publish_sizes();
  return true;
}

bool Keyspace::del(std::string_view key, int64_t now) {
  auto it = find_live(key, now);
  if (it == map_.end()) return false;
  erase(it);
  publish_sizes();
  return true;
}

bool Keyspace::exists(std::string_view key, int64_t now) {
  return find_live(key, now) != map_.end();
}

IncrStatus Keyspace::incr_by(std::string_view key, int64_t delta, int64_t now, int64_t* result) {
  auto it = find_live(key, now);
  int64_t old = 0;
  if (it != map_.end()) {
    std::optional<int64_t> v = parse_int64(it->second.value);
    if (!v) return IncrStatus::kNotInteger;
    old = *v;
  }
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if ((delta < 0 && old < 0 && delta < kMin - old) ||
      (delta > 0 && old > 0 && delta > kMax - old)) {
    return IncrStatus::kOverflow;
  }
  *result = old + delta;
  if (it == map_.end()) {
    it = map_.try_emplace(std::string(key)).first;
    publish_sizes();
  }
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), *result);
  it->second.value.assign(buf, end);
  return IncrStatus::kOk;
}

bool Keyspace::expire(std::string_view key, int64_t expire_at, ExpireCondition condition,
                      int64_t now) {
  auto it = find_live(key, now);
  if (it == map_.end()) return false;
  const int64_t current = it->second.expire_at;  // kNoExpiry counts as "never" (infinite)
  switch (condition) {
    case ExpireCondition::kAlways:
      break;
    case ExpireCondition::kNx:
      if (current != kNoExpiry) return false;
      break;
    case ExpireCondition::kXx:
      if (current == kNoExpiry) return false;
      break;
    case ExpireCondition::kGt:
      if (current == kNoExpiry || expire_at <= current) return false;
      break;
    case ExpireCondition::kLt:
      if (current != kNoExpiry && expire_at >= current) return false;
      break;
  }
  if (expire_at <= now) {
    // Redis deletes a key given a time already past (and counts it as a delete, not an expiry).
    erase(it);
  } else {
    set_expiry(it, expire_at);
  }
  publish_sizes();
  return true;
}

int64_t Keyspace::ttl_ms(std::string_view key, int64_t now) {
  auto it = find_live(key, now);
  if (it == map_.end()) return -2;
  if (it->second.expire_at == kNoExpiry) return -1;
  return std::max<int64_t>(0, it->second.expire_at - now);
}

size_t Keyspace::size(int64_t now) {
  sweep(now, std::numeric_limits<size_t>::max());
  return map_.size();
}

void Keyspace::clear() {
  map_.clear();
  deadlines_.clear();
  publish_sizes();
}

size_t Keyspace::sweep(int64_t now, size_t limit) {
  size_t n = 0;
  while (n < limit && !deadlines_.empty() && now > deadlines_.begin()->first) {
    auto node = deadlines_.extract(deadlines_.begin());
    map_.erase(av(node.value().second));
    ++n;
  }
  if (n > 0) {
    expired_.add(n);
    publish_sizes();
  }
  return n;
}

KeyspaceStats Keyspace::stats() const {
  return {.keys = keys_.get(),
          .volatile_keys = volatile_keys_.get(),
          .hits = hits_.get(),
          .misses = misses_.get(),
          .expired = expired_.get()};
}

}  // namespace shardloop::examples::kv
