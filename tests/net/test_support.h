// Helpers shared by the net tests (on top of tests/runtime/test_util.h): fd counting, seeds,
// random payloads and an echo round trip.
#pragma once

#include <dirent.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "net/address.h"
#include "net/connection.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task.h"
#include "tests/runtime/test_util.h"

namespace shardloop::testing {

// Open fds of this process (entries of /proc/self/fd, minus the one opendir holds).
inline int count_open_fds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n - 3;  // ".", ".." and the directory's own fd
}

// Seed from SHARDLOOP_TEST_SEED if set, else from the clock; tests print it with SCOPED_TRACE.
inline uint64_t test_seed() {
  if (const char* env = std::getenv("SHARDLOOP_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  return std::random_device{}();
}

// A Status with its own representation, for handing from a worker to the test thread. Debian's
// Abseil is not built with ThreadSanitizer, so a shared representation released on two threads
// (its reference count lives in the uninstrumented library) is reported as a race.
inline absl::Status detached(const absl::Status& s) {
  return s.ok() ? absl::OkStatus() : absl::Status(s.code(), std::string(s.message()));
}

inline net::Address loopback_any() { return *net::Address::parse("127.0.0.1:0"); }

inline std::vector<char> random_bytes(size_t n, uint64_t seed) {
  std::vector<char> v(n);
  std::mt19937_64 rng(seed);
  for (char& c : v) c = static_cast<char>(rng());
  return v;
}

// Writes `data` while reading the echo back (concurrently, so a large message cannot deadlock
// against its own echo); true when every byte came back in order.
inline Task<bool> echo_round_trip(net::Connection& conn, const std::vector<char>& data) {
  bool written = false, write_ok = false;
  spawn([](net::Connection* c, const std::vector<char>* d, bool* done, bool* ok) -> Task<void> {
    *ok = (co_await c->write_all(absl::MakeConstSpan(*d))).ok();
    *done = true;
  }(&conn, &data, &written, &write_ok));
  std::vector<char> in(32 * 1024);
  size_t got = 0;
  bool same = true;
  while (got < data.size()) {
    auto n = co_await conn.read(absl::MakeSpan(in.data(), std::min(in.size(), data.size() - got)));
    if (!n.ok() || *n == 0) break;
    if (std::memcmp(in.data(), data.data() + got, *n) != 0) same = false;
    got += *n;
  }
  while (!written) co_await yield_now();  // the writer points into this frame
  co_return same&& write_ok&& got == data.size();
}

}  // namespace shardloop::testing
