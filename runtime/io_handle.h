// IoHandle: what a worker dispatches poller events to.
//
// This is the callback layer under the coroutine API: AsyncFd implements it to resume
// coroutines, and a handler that wants no coroutine at all can implement it directly.
// Thread-safety: on_io() is only ever called on the worker that registered the handle.
#pragma once

#include <cstdint>

namespace shardloop {

class IoHandle {
 public:
  // `events` is a mask of io_events bits. The handler may deregister or close any fd of its
  // worker, itself included; events for those fds later in the same batch are dropped.
  virtual void on_io(uint32_t events) = 0;

 protected:
  ~IoHandle() = default;
};

}  // namespace shardloop
