// ConnectionSet: the N connected socket pairs a storm run polls.
//
// Each pair has a driver end (written by the driver thread) and a worker end (registered with
// the poll design under test and read by its workers). Both ends are non-blocking. TCP pairs are
// made over 127.0.0.1 by connecting to a listener one connection at a time (so the accept
// backlog never overflows), with TCP_NODELAY on the driver end so a 1-byte write is sent at once
// rather than held back by Nagle's algorithm behind an unacknowledged byte. On close both ends
// get SO_LINGER 0, which resets the connection instead of leaving it in TIME_WAIT: a benchmark
// matrix makes and drops tens of thousands of connections and would otherwise fill the TIME_WAIT
// table. AF_UNIX pairs come from socketpair().
//
// Thread-safety: made and destroyed by one thread; during a run the fds are only read (as
// values) by every thread, and each fd's I/O follows the design's own rules.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shardloop::bench::storm {

enum class Transport { kTcp, kUnix };

class ConnectionSet {
 public:
  static absl::StatusOr<ConnectionSet> open(Transport transport, int n);

  ConnectionSet(ConnectionSet&& other) noexcept;
  ConnectionSet& operator=(ConnectionSet&&) = delete;
  ConnectionSet(const ConnectionSet&) = delete;
  ~ConnectionSet();

  int size() const { return static_cast<int>(driver_fds_.size()); }
  int driver_fd(int i) const { return driver_fds_[static_cast<size_t>(i)]; }
  int worker_fd(int i) const { return worker_fds_[static_cast<size_t>(i)]; }

  // Reads whatever is pending on every worker end (between runs, so each run starts with no
  // readable socket). Returns the bytes discarded.
  long drain();

 private:
  ConnectionSet() = default;

  std::vector<int> driver_fds_;
  std::vector<int> worker_fds_;
};

// Raises RLIMIT_NOFILE's soft limit to the hard limit and checks that `needed` descriptors fit.
// Returns the resulting soft limit, or FailedPrecondition naming the hard limit.
absl::StatusOr<long> ensure_fd_limit(long needed);

}  // namespace shardloop::bench::storm
