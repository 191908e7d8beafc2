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

#include "examples/common/serve_until_signal.h"
#include "examples/common/server_flags.h"
#include "examples/kv/kv_service.h"
#include "gflags/gflags.h"

DEFINE_uint64(max_clients, 10000, "most clients connected at once (0: no limit)");

using namespace shardloop;

int main(int argc, char** argv) {
  examples::parse_server_command_line(&argc, &argv, "Redis-protocol key-value store on shardloop",
                                      6380);
  auto setup = examples::server_setup(examples::server_flags());
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
      examples::kv::server_options(options), examples::drain_timeout());
}
