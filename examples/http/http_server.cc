// http_server: HTTP/1.1 on shardloop, with keep-alive and pipelining and a strict parser.
//
// Shows: a protocol parser from net/protocols driven by Connection::read_chunk(), pipelined
// answers written together, rejections answered and closed, graceful drain on SIGINT/SIGTERM.
//
// Try it:
//   ./http_server --port 8080 &
//   curl -s http://127.0.0.1:8080/          # hello
//   curl -s http://127.0.0.1:8080/stats     # per-worker counters as JSON
//   wrk -t1 -c100 -d10s http://127.0.0.1:8080/
#include <cstdio>

#include "examples/common/serve_until_signal.h"
#include "examples/common/server_flags.h"
#include "examples/http/http_service.h"
#include "gflags/gflags.h"
#include "net/server.h"
#include "runtime/runtime.h"

using namespace shardloop;

int main(int argc, char** argv) {
  examples::parse_server_command_line(&argc, &argv, "HTTP/1.1 server on shardloop", 8080);
  auto setup = examples::server_setup(examples::server_flags());
  if (!setup.ok()) {
    std::fprintf(stderr, "http_server: %s\n", setup.status().ToString().c_str());
    return 2;
  }
  return examples::serve_until_signal("http_server", setup->runtime, setup->address,
                                      examples::serve_http, {}, examples::drain_timeout());
}
