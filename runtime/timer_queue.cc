#include "runtime/timer_queue.h"

#include <utility>

namespace shardloop {

// TimerId layout: high 32 bits = the node's seq (truncated), low 32 bits = node index. A
// cancelled or fired node is reused with a new seq, so an old id no longer matches it.
namespace {
TimerId make_id(uint32_t index, uint64_t seq) { return (seq << 32) | index; }
uint32_t id_index(TimerId id) { return static_cast<uint32_t>(id); }
uint32_t id_seq(TimerId id) { return static_cast<uint32_t>(id >> 32); }
}  // namespace

TimerId TimerQueue::add(TimePoint deadline, Callback callback) {
  uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    index = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();
  }
  Node& n = nodes_[index];
  n.deadline = deadline;
  n.seq = next_seq_++;
  n.callback = std::move(callback);
  n.live = true;
  n.heap_pos = heap_.size();
  heap_.push_back(index);
  sift_up(n.heap_pos);
  return make_id(index, n.seq);
}

bool TimerQueue::cancel(TimerId id) {
  uint32_t index = id_index(id);
  if (index >= nodes_.size()) return false;
  Node& n = nodes_[index];
  if (!n.live || static_cast<uint32_t>(n.seq) != id_seq(id)) return false;
  remove_at(n.heap_pos);
  return true;
}

size_t TimerQueue::fire_due(TimePoint now) {
  size_t fired = 0;
  while (!heap_.empty() && nodes_[heap_[0]].deadline <= now) {
    uint32_t index = heap_[0];
    Callback cb = std::move(nodes_[index].callback);
    remove_at(0);
    ++fired;
    cb();  // may add or cancel timers: nodes_ may reallocate, so no references are held here
  }
  return fired;
}

std::optional<TimePoint> TimerQueue::next_deadline() const {
  if (heap_.empty()) return std::nullopt;
  return nodes_[heap_[0]].deadline;
}

void TimerQueue::clear() {
  // Move callbacks out first: destroying one may (through a destructor) touch this queue.
  std::vector<Callback> doomed;
  for (uint32_t index : heap_) doomed.push_back(std::move(nodes_[index].callback));
  heap_.clear();
  nodes_.clear();
  free_.clear();
  doomed.clear();
}

bool TimerQueue::before(uint32_t a, uint32_t b) const {
  const Node& x = nodes_[a];
  const Node& y = nodes_[b];
  return x.deadline < y.deadline || (x.deadline == y.deadline && x.seq < y.seq);
}

void TimerQueue::swap_at(size_t a, size_t b) {
  std::swap(heap_[a], heap_[b]);
  nodes_[heap_[a]].heap_pos = a;
  nodes_[heap_[b]].heap_pos = b;
}

void TimerQueue::sift_up(size_t pos) {
  while (pos > 0) {
    size_t parent = (pos - 1) / 2;
    if (!before(heap_[pos], heap_[parent])) break;
    swap_at(pos, parent);
    pos = parent;
  }
}

void TimerQueue::sift_down(size_t pos) {
  const size_t n = heap_.size();
  for (;;) {
    size_t smallest = pos;
    size_t l = 2 * pos + 1, r = l + 1;
    if (l < n && before(heap_[l], heap_[smallest])) smallest = l;
    if (r < n && before(heap_[r], heap_[smallest])) smallest = r;
    if (smallest == pos) return;
    swap_at(pos, smallest);
    pos = smallest;
  }
}

void TimerQueue::remove_at(size_t pos) {
  uint32_t index = heap_[pos];
  size_t last = heap_.size() - 1;
  if (pos != last) swap_at(pos, last);
  heap_.pop_back();
  if (pos < heap_.size()) {
    sift_up(pos);
    sift_down(pos);
  }
  Node& n = nodes_[index];
  n.live = false;
  n.callback = nullptr;
  free_.push_back(index);
}

}  // namespace shardloop
