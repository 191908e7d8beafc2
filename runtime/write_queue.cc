#include "runtime/write_queue.h"

#include <algorithm>
#include <cstring>

namespace shardloop {

void WriteQueue::append(absl::Span<const char> data) {
  size_t off = 0;
  while (off < data.size()) {
    if (blocks_.empty() || blocks_.back().end == kBlockSize) {
      blocks_.push_back(Block{std::make_unique<char[]>(kBlockSize), 0, 0});
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
    if (b.begin == b.end) blocks_.pop_front();
  }
}

void WriteQueue::clear() {
  blocks_.clear();
  size_ = 0;
}

}  // namespace shardloop
