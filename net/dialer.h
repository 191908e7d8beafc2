// dial(): opens a client TCP connection from the current worker without blocking it.
//
//   absl::StatusOr<Connection> c = co_await dial(*Address::parse("127.0.0.1:7000"));
//
// The connection belongs to the worker that dialed. Thread-safety: call on a worker.
#pragma once

#include "absl/status/statusor.h"
#include "net/address.h"
#include "net/connection.h"
#include "runtime/task.h"

namespace shardloop::net {

Task<absl::StatusOr<Connection>> dial(Address address);

}  // namespace shardloop::net
