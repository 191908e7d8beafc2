// UringPoller: one io_uring instance per worker, as a Poller (readiness through multishot poll)
// and as CompletionIo (multishot recv into a provided-buffer ring, send, multishot accept).
//
// Submissions queue up in the SQ and go to the kernel with the next wait(), in the same
// io_uring_enter that waits for completions. The ring is created with SINGLE_ISSUER and
// DEFER_TASKRUN where the kernel has them, so completions are only processed inside that call,
// on the owner thread; that is why a poller must be created on the thread that will use it.
//
// user_data is the caller's 64-bit token (token.h: slot, generation, op). Two values are
// reserved: kWakeupToken for the eventfd that wake() writes, and kIgnoreToken for cancellations
// and poll removals, whose own completions nobody needs.
//
// Thread-safety: owner-only except wake(), as for every Poller.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "runtime/completion_io.h"
#include "runtime/poller.h"

namespace shardloop {

class UringPoller final : public Poller, public CompletionIo {
 public:
  static absl::StatusOr<std::unique_ptr<UringPoller>> create(const PollerOptions& options = {});
  ~UringPoller() override;

  // Poller
  Backend backend() const override { return Backend::kIoUring; }
  absl::Status add(int fd, uint64_t token, uint32_t interest) override;
  absl::Status modify(int fd, uint64_t token, uint32_t interest) override;
  absl::Status remove(int fd, uint64_t token) override;
  absl::StatusOr<size_t> wait(absl::Span<PollEvent> out, int64_t timeout_ns) override;
  void wake() override;
  PollerCounters counters() const override { return counters_; }
  CompletionIo* completion_io() override { return this; }

  // CompletionIo
  absl::Status recv_multishot(int fd, uint64_t token) override;
  absl::Status sendmsg(int fd, const msghdr* msg, uint64_t token) override;
  absl::Status accept_multishot(int fd, uint64_t token) override;
  absl::Status cancel(uint64_t token) override;
  absl::Span<const char> buffer(uint16_t id, size_t length) override;
  void recycle_buffer(uint16_t id) override;
  void notify_when_buffers_available(uint64_t token) override;

 private:
  UringPoller() = default;
  absl::Status init(const PollerOptions& options);
  // A free SQE, submitting what is queued first if the SQ is full.
  absl::StatusOr<io_uring_sqe*> next_sqe();
  absl::Status arm_poll(int fd, uint64_t token, uint32_t interest);
  absl::Status arm_wakeup();
  size_t reap(absl::Span<PollEvent> out);
  bool buffer_waiters_can_run() const {
    return !buffer_waiters_.empty() && buffers_lent_ < buffer_count_;
  }

  io_uring ring_{};
  bool ring_ready_ = false;
  int wakefd_ = -1;
  unsigned pending_sqes_ = 0;

  // Provided buffers: buffer ring (shared with the kernel) and the memory it points into.
  io_uring_buf_ring* buf_ring_ = nullptr;
  size_t buf_ring_bytes_ = 0;
  char* buffers_ = nullptr;
  size_t buffers_bytes_ = 0;
  unsigned buffer_count_ = 0;
  unsigned buffer_size_ = 0;
  std::vector<uint64_t> buffer_waiters_;  // tokens to tell once buffers are back
  // Buffers a reaped completion handed out and recycle_buffer() has not returned yet. Waiters
  // are told whenever this is below buffer_count_, i.e. the ring holds a free buffer: the state
  // of the ring, not the order of events, decides (a recycle may precede the reaping of an
  // ENOBUFS the kernel posted before it, and then no later recycle may ever come).
  unsigned buffers_lent_ = 0;

  // Readiness registrations, so a multishot poll that the kernel ends can be re-armed.
  struct PollReg {
    int fd;
    uint32_t interest;
  };
  absl::flat_hash_map<uint64_t, PollReg> polls_;
  absl::flat_hash_map<int, uint64_t> poll_token_by_fd_;

  PollerCounters counters_;
};

// Checks that this kernel and process can run UringPoller; the error names the reason.
absl::Status probe_io_uring();

}  // namespace shardloop
