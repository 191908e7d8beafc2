// kv_server: a Redis-protocol (RESP2) key-value store on shardloop, its keyspace sharded across
// the workers.
//
// Shows: one shard per worker touched only by its owner (no locks); commands for keys another
// worker owns travel on per-worker-pair rings (runtime/channel.h) and the results come back the
// same way; pipelined replies in order; multi-key commands gathered across shards; the RESP
// parser from net/protocols with redis's limits and error texts; max clients refused with
// redis's error.
//
// Commands: PING ECHO GET SET(EX/PX/NX/XX) DEL EXISTS INCR DECR MGET MSET EXPIRE TTL DBSIZE
// FLUSHALL INFO COMMAND CONFIG GET QUIT, in multibulk or inline form.
//
// Try it:
//   ./kv_server --port 6380 --workers 2 &
//   redis-cli -p 6380 set greeting hello          # OK
//   redis-cli -p 6380 get greeting                # hello
//   redis-cli -p 6380 info stats                  # cross_worker_messages and friends
//   redis-benchmark -p 6380 -q -P 16 -t ping,set,get,incr,mset -n 100000
#include <memory>

#include "examples/common/cli.h"
#include "examples/common/serve_until_signal.h"
#include "examples/common/server_flags.h"
#include "examples/kv/kv_service.h"
#include "gflags/gflags.h"

DEFINE_string(host, "127.0.0.1", "address to listen on (numeric IPv4/IPv6 or localhost)");
DEFINE_int32(port, 6380, "TCP port (0: pick a free one and print it)");
DEFINE_int32(workers, 0, "worker threads, one shard each (0: one per CPU this process may use)");
DEFINE_string(backend, "auto", "poller backend: epoll, io_uring or auto");
DEFINE_string(poll_mode, "adaptive", shardloop::examples::kPollModeHelp);
DEFINE_bool(pin, false, "pin worker i to the i-th allowed CPU");
DEFINE_uint64(max_clients, 10000, "most clients connected at once (0: no limit)");
DEFINE_double(drain_seconds, 5, "on SIGINT/SIGTERM, how long connections may take to finish");

using namespace shardloop;

int main(int argc, char** argv) {
  cli::accept_dashed_flags(argc, argv);
  gflags::SetUsageMessage("Redis-protocol key-value store on shardloop");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  auto setup = examples::server_setup({.host = FLAGS_host,
                                       .port = FLAGS_port,
                                       .workers = FLAGS_workers,
                                       .backend = FLAGS_backend,
                                       .poll_mode = FLAGS_poll_mode,
                                       .pin = FLAGS_pin});
  if (!setup.ok()) {
    std::fprintf(stderr, "kv_server: %s\n", setup.status().ToString().c_str());
    return 2;
  }
  const examples::kv::KvOptions options{.max_clients = FLAGS_max_clients};
  return examples::serve_until_signal(
      "kv_server", setup->runtime, setup->address,
      [&options](Runtime& rt) -> net::ConnectionHandler {
        // Made once the workers exist; the handler's copies keep the service alive until the
        // server is gone, which is after the runtime has stopped.
        auto service = std::make_shared<examples::kv::KvService>(rt, options);
        return [service](net::Connection c) { return service->serve(std::move(c)); };
      },
      examples::kv::server_options(options), absl::Milliseconds(FLAGS_drain_seconds * 1000));
}
