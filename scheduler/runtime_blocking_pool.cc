// The Runtime's own BlockingPool: a companion object of the Runtime, made on first use and shut
// down by a stop hook (queued functions rejected, running ones finished), freed with the Runtime.
#include <memory>

#include "runtime/runtime.h"
#include "scheduler/run_blocking.h"

namespace shardloop::scheduler {
namespace {
const char kPoolKey = 0;  // its address is the companion key
}  // namespace

BlockingPool& runtime_blocking_pool(Runtime& runtime) {
  bool made = false;
  std::shared_ptr<void> pool = runtime.companion(&kPoolKey, [&] {
    made = true;
    BlockingPoolOptions options;
    options.threads = runtime.options().blocking_threads;
    options.consumers = runtime.size();
    return std::shared_ptr<void>(std::make_shared<BlockingPool>(options));
  });
  auto* p = static_cast<BlockingPool*>(pool.get());
  // Outside companion()'s lock. If the runtime has stopped already, this shuts the pool down at
  // once, and run_blocking() then fails with BlockingRejected, as it should.
  if (made) runtime.add_stop_hook([p] { p->shutdown(ShutdownMode::kReject); });
  return *p;  // the runtime keeps it alive
}

}  // namespace shardloop::scheduler
