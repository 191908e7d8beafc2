// WriteQueue: bytes accepted by a buffered write but not yet taken by the kernel.
//
// A list of fixed-size blocks, taken as bytes arrive and given back as the kernel takes them, so
// an idle connection's queue owns no memory at all. Blocks come from a small per-thread cache
// (a worker's connections share it), so a busy connection does not pay an allocation per
// response. gather() exposes the queued bytes as an iovec array for one writev/sendmsg.
//
// Thread-safety: none; owned by one AsyncFd, touched only by its worker. The block cache is
// thread_local.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <deque>
#include <memory>

#include "absl/types/span.h"

namespace shardloop {

class WriteQueue {
 public:
  // 16 KiB: a few blocks cover a typical socket send buffer's worth of backlog, and one block is
  // small enough that a mostly idle connection with a little pending output stays cheap.
  static constexpr size_t kBlockSize = 16 * 1024;

  void append(absl::Span<const char> data);
  // Fills up to `max` iovecs with the oldest queued bytes; returns how many were filled.
  int gather(iovec* iov, int max) const;
  // Drops the oldest `n` bytes (what the kernel took).
  void consume(size_t n);
  void clear();
  ~WriteQueue() { clear(); }
  WriteQueue() = default;
  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Block {
    std::unique_ptr<char[]> data;
    size_t begin = 0;
    size_t end = 0;
  };
  static std::unique_ptr<char[]> take_block();
  static void give_back(std::unique_ptr<char[]> block);
  std::deque<Block> blocks_;
  size_t size_ = 0;
};

}  // namespace shardloop
