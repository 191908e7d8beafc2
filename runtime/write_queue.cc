#include "runtime/write_queue.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace shardloop {
namespace {

// Up to 32 spare blocks (512 KiB) per thread: enough for the bursts of a worker's busy
// connections, little enough that an idle worker keeps almost nothing.
constexpr size_t kCachedBlocks = 32;
thread_local std::vector<std::unique_ptr<char[]>> t_spare_blocks;

}  // namespace

std::unique_ptr<char[]> WriteQueue::take_block() {
  if (!t_spare_blocks.empty()) {
    std::unique_ptr<char[]> block = std::move(t_spare_blocks.back());
    t_spare_blocks.pop_back();
    return block;
  }
  // new char[n], not make_unique<char[]>(n): the block is written before it is read, so
  // zero-filling 16 KiB per block would be pure waste.
  return std::unique_ptr<char[]>(new char[kBlockSize]);
}

void WriteQueue::give_back(std::unique_ptr<char[]> block) {
  if (t_spare_blocks.size() < kCachedBlocks) t_spare_blocks.push_back(std::move(block));
}

void WriteQueue::append(absl::Span<const char> data) {
  size_t off = 0;
  while (off < data.size()) {
    if (blocks_.empty() || blocks_.back().end == kBlockSize) {
      blocks_.push_back(Block{take_block(), 0, 0});
    }
    Block& b = blocks_.back();
    size_t n = std::min(kBlockSize - b.end, data.size() - off);
    std::memcpy(b.data.get() + b.end, data.data() + off, n);
    b.end += n;
    off += n;
  }
  size_ += data.size();
}

int WriteQueue::gather(iovec* iov, int max) const {
  int n = 0;
  for (auto it = blocks_.begin(); it != blocks_.end() && n < max; ++it) {
    if (it->end == it->begin) continue;
    iov[n].iov_base = it->data.get() + it->begin;
    iov[n].iov_len = it->end - it->begin;
    ++n;
  }
  return n;
}

void WriteQueue::consume(size_t n) {
  size_ -= std::min(n, size_);
  while (n > 0 && !blocks_.empty()) {
    Block& b = blocks_.front();
    size_t take = std::min(n, b.end - b.begin);
    b.begin += take;
    n -= take;
    if (b.begin == b.end) {
      give_back(std::move(b.data));
      blocks_.pop_front();
    }
  }
}

void WriteQueue::clear() {
  for (Block& b : blocks_) give_back(std::move(b.data));
  blocks_.clear();
  size_ = 0;
}

}  // namespace shardloop
