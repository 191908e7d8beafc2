// The echo service: writes back every byte it reads, until the peer finishes or fails.
// Used by examples/echo_server and by the integration tests.
#pragma once

#include "net/connection.h"
#include "runtime/task.h"

namespace shardloop::examples {

// Reads into a buffer of this size per connection. 16 KiB keeps syscalls per byte low for bulk
// echo; idle-memory work (per-worker scratch buffers) belongs to the connection layer.
inline constexpr size_t kEchoBufferSize = 16 * 1024;

Task<void> serve_echo(net::Connection conn);

}  // namespace shardloop::examples
