// The echo service: writes back every byte it reads, until the peer finishes or fails.
// It reads with read_chunk() and writes with the buffered write(), so a connection owns no
// buffer while it waits: idle connections cost only their coroutine frame and socket state.
// Used by examples/echo_server and by the integration tests.
#pragma once

#include "net/connection.h"
#include "runtime/task.h"

namespace shardloop::examples {

Task<void> serve_echo(net::Connection conn);

}  // namespace shardloop::examples
