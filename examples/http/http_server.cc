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

#include "examples/common/cli.h"
#include "examples/common/serve_until_signal.h"
#include "examples/common/server_flags.h"
#include "examples/http/http_service.h"
#include "gflags/gflags.h"
#include "net/server.h"
#include "runtime/runtime.h"

DEFINE_string(host, "127.0.0.1", "address to listen on (numeric IPv4/IPv6 or localhost)");
DEFINE_int32(port, 8080, "TCP port (0: pick a free one and print it)");
DEFINE_int32(workers, 0, "worker threads (0: one per CPU this process may use)");
DEFINE_string(backend, "auto", "poller backend: epoll, io_uring or auto");
DEFINE_string(poll_mode, "adaptive", shardloop::examples::kPollModeHelp);
DEFINE_bool(pin, false, "pin worker i to the i-th allowed CPU");
DEFINE_double(drain_seconds, 5, "on SIGINT/SIGTERM, how long connections may take to finish");

using namespace shardloop;

int main(int argc, char** argv) {
  cli::accept_dashed_flags(argc, argv);
  gflags::SetUsageMessage("HTTP/1.1 server on shardloop");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  auto setup = examples::server_setup({.host = FLAGS_host,
                                       .port = FLAGS_port,
                                       .workers = FLAGS_workers,
                                       .backend = FLAGS_backend,
                                       .poll_mode = FLAGS_poll_mode,
                                       .pin = FLAGS_pin});
  if (!setup.ok()) {
    std::fprintf(stderr, "http_server: %s\n", setup.status().ToString().c_str());
    return 2;
  }
  return examples::serve_until_signal("http_server", setup->runtime, setup->address,
                                      examples::serve_http, {},
                                      absl::Milliseconds(FLAGS_drain_seconds * 1000));
}
