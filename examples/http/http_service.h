// The HTTP/1.1 service of examples/http_server: GET / answers "hello", GET /stats the workers'
// counters as JSON, anything else 404. Keep-alive and pipelining (the answers to requests that
// arrived together go out in one write); every parser rejection is answered with its status and
// closes the connection. Used by the example binary and by the integration tests.
#pragma once

#include "net/connection.h"
#include "runtime/task.h"

namespace shardloop::examples {

Task<void> serve_http(net::Connection conn);

}  // namespace shardloop::examples
