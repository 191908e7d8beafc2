// Mutex: std::mutex with Clang thread-safety annotations, so ABSL_GUARDED_BY fields are
// checked at compile time under clang. std::mutex (not absl::Mutex) because the Debian Abseil
// library is built without ThreadSanitizer instrumentation, and TSan must see our locks.
#pragma once

#include <mutex>

#include "absl/base/thread_annotations.h"

namespace shardloop {

class ABSL_LOCKABLE Mutex {
 public:
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace shardloop
