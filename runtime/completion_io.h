// CompletionIo: completion-based socket operations that a backend such as io_uring offers in
// addition to readiness (Poller::completion_io()).
//
// Operations are queued here and handed to the kernel by the next Poller::wait(), together
// with the wait itself: one system call per loop iteration for all submissions and completions.
// Each operation is tagged with a token (token.h) whose `op` bits say which operation it is;
// its completions come back from wait() as PollEvents with `result` and `flags` set.
//
// Receives use a per-poller ring of provided buffers: a completion names a buffer id
// (flags >> IORING_CQE_BUFFER_SHIFT) whose bytes stay valid until recycle_buffer(id).
//
// Thread-safety: owner worker only, like the Poller it belongs to.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace shardloop {

// Values of Token::op for completion operations.
namespace io_ops {
inline constexpr uint8_t kReadiness = 0;  // readiness events (epoll, io_uring poll)
inline constexpr uint8_t kRecv = 1;       // multishot receive into provided buffers
inline constexpr uint8_t kSend = 2;
inline constexpr uint8_t kAccept = 3;            // multishot accept; result is the new fd
inline constexpr uint8_t kBuffersAvailable = 4;  // synthetic: buffers are back after ENOBUFS
inline constexpr uint8_t kPollUpdate = 5;        // internal to the poller: a readiness modify()
}  // namespace io_ops

// Completion flag bits a handler needs (the kernel's IORING_CQE_F_MORE and
// IORING_CQE_BUFFER_SHIFT; uring_poller.cc checks they match).
inline constexpr uint32_t kCompletionMore = 1u << 1;
inline constexpr int kCompletionBufferShift = 16;

class CompletionIo {
 public:
  // Multishot receive on a connected socket, into the provided-buffer ring. Completes once per
  // chunk received while IORING_CQE_F_MORE is set; a completion without it ends the operation
  // (end of stream, error, -ENOBUFS, or cancellation).
  virtual absl::Status recv_multishot(int fd, uint64_t token) = 0;
  // One sendmsg (MSG_NOSIGNAL) of the iovecs in `msg`; the result is the byte count, possibly
  // short. `msg`, its iovecs and the bytes they point to must stay valid until the completion.
  virtual absl::Status sendmsg(int fd, const msghdr* msg, uint64_t token) = 0;
  // Multishot accept; each completion's result is a new non-blocking, close-on-exec fd or -errno.
  virtual absl::Status accept_multishot(int fd, uint64_t token) = 0;
  // Requests cancellation of the operation tagged `token`; its final completion follows.
  virtual absl::Status cancel(uint64_t token) = 0;

  // The bytes a receive completion delivered in provided buffer `id`.
  virtual absl::Span<const char> buffer(uint16_t id, size_t length) = 0;
  // Returns buffer `id` to the ring.
  virtual void recycle_buffer(uint16_t id) = 0;
  // Asks for one {token with op kBuffersAvailable} event once recycled buffers are available
  // again (after a receive failed with -ENOBUFS).
  virtual void notify_when_buffers_available(uint64_t token) = 0;

 protected:
  ~CompletionIo() = default;
};

}  // namespace shardloop
