// The echo service: writes back every byte it reads, until the peer finishes or fails.
// It reads with read_chunk() and writes with the buffered write(), so a connection owns no
// buffer while it waits: idle connections cost only their coroutine frame and socket state.
// Used by examples/echo_server and by the integration tests.
#pragma once

#include <chrono>

#include "net/connection.h"
#include "net/server.h"
#include "runtime/task.h"

namespace shardloop::examples {

Task<void> serve_echo(net::Connection conn);

// serve_echo() that also burns `work` of CPU per chunk it reads before echoing it: a stand-in
// for request processing, so that benchmarks can make the server, not the load generator, the
// bottleneck (bench/run_rebalance.sh).
net::ConnectionHandler serve_echo_with_work(std::chrono::nanoseconds work);

}  // namespace shardloop::examples
