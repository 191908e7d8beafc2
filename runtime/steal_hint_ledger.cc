#include "runtime/steal_hint_ledger.h"

#include <algorithm>
#include <utility>

namespace shardloop {

StealHintLedger::Entry* StealHintLedger::entry(uint64_t affinity) {
  auto it = entries_.find(affinity);
  if (it != entries_.end()) return &it->second;
  if (entries_.size() >= kMaxAffinities) {
    ++dropped_;
    return nullptr;
  }
  return &entries_[affinity];
}

void StealHintLedger::record_local(uint64_t affinity) {
  Entry* e = entry(affinity);
  if (e == nullptr) return;
  ++e->local_starts;
  e->run_thief = kNoThief;  // the owner ran one: any thief's run ends here
  e->run_length = 0;
}

void StealHintLedger::record_steal(uint64_t affinity, uint32_t thief) {
  Entry* e = entry(affinity);
  if (e == nullptr) return;
  if (e->run_thief == thief) {
    ++e->run_length;
  } else {
    e->run_thief = thief;
    e->run_length = 1;
  }
  auto it = std::find_if(e->thieves.begin(), e->thieves.end(),
                         [thief](const ThiefSteals& t) { return t.worker == thief; });
  if (it == e->thieves.end()) {
    e->thieves.push_back({.worker = thief});
    it = e->thieves.end() - 1;
  }
  ++it->steals;
  it->longest_streak = std::max(it->longest_streak, e->run_length);
}

StealHintReport StealHintLedger::take() {
  StealHintReport report;
  report.dropped = std::exchange(dropped_, 0);
  report.affinities.reserve(entries_.size());
  for (auto& [affinity, e] : entries_) {
    std::sort(e.thieves.begin(), e.thieves.end(),
              [](const ThiefSteals& a, const ThiefSteals& b) { return a.worker < b.worker; });
    report.affinities.push_back({affinity, e.local_starts, std::move(e.thieves)});
  }
  entries_.clear();
  std::sort(
      report.affinities.begin(), report.affinities.end(),
      [](const AffinitySteals& a, const AffinitySteals& b) { return a.affinity < b.affinity; });
  return report;
}

}  // namespace shardloop
