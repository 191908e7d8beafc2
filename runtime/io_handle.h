// IoHandle: what a worker dispatches poller events to.
//
// This is the callback layer under the coroutine API: AsyncFd implements it to resume
// coroutines, and a handler that wants no coroutine at all can implement it directly.
// Thread-safety: on_io() is only ever called on the worker that registered the handle.
#pragma once

#include <cstdint>

#include "runtime/poller.h"

namespace shardloop {

class IoHandle {
 public:
  // A readiness event (event.events: io_events bits) or a completion (event.result and
  // event.flags; op_of(event.token) says which operation). The handler may deregister or close
  // any fd of its worker, itself included; events for those fds later in the batch are dropped.
  virtual void on_io(const PollEvent& event) = 0;

 protected:
  ~IoHandle() = default;
};

}  // namespace shardloop
