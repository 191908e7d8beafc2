// rpc_server: a small RPC service (echo, sum, sleep) on SLRP frames (net/protocols/frame_codec.h).
//
// Shows: a binary frame codec driven by Connection::read_chunk(), request ids and pipelining
// (each answer is written as soon as its request completes, so answers may overtake each other),
// per-request deadlines carried in the request, and limits answered with error frames (an
// oversized or malformed frame gets its error frame, then the connection closes). The wire
// format and the methods are described in examples/rpc/rpc_service.h.
//
// Try it:
//   ./rpc_server --port 7100 &
//   ./rpc_client --port 7100 --method echo --payload hello          # one answer: "hello"
//   ./rpc_client --port 7100 --method sum --payload 1,2,39          # 42
//   ./rpc_client --port 7100 --method sleep --payload 200 --deadline_ms 50   # deadline exceeded
//   ./rpc_client --port 7100 --requests 100000 --pipeline 32        # latency percentiles
//   ./loadgen --mode rpc --port 7100 --connections 50 --duration 3
#include <cstdio>

#include "examples/common/serve_until_signal.h"
#include "examples/common/server_flags.h"
#include "examples/rpc/rpc_service.h"
#include "gflags/gflags.h"
#include "net/server.h"
#include "runtime/runtime.h"

DEFINE_int32(max_frame_size, 1024 * 1024, "largest frame accepted, in bytes");
DEFINE_int32(max_in_flight, 1024, "sleeping requests allowed at once per connection");

using namespace shardloop;

int main(int argc, char** argv) {
  examples::parse_server_command_line(&argc, &argv, "RPC server (echo, sum, sleep) on shardloop",
                                      7100);
  auto setup = examples::server_setup(examples::server_flags());
  if (!setup.ok()) {
    std::fprintf(stderr, "rpc_server: %s\n", setup.status().ToString().c_str());
    return 2;
  }
  if (FLAGS_max_frame_size < static_cast<int>(rpc::kFrameHeaderSize) || FLAGS_max_in_flight < 1) {
    std::fprintf(stderr,
                 "rpc_server: --max_frame_size must be at least %zu, --max_in_flight >= 1\n",
                 rpc::kFrameHeaderSize);
    return 2;
  }
  examples::RpcOptions options;
  options.limits.max_frame_size = static_cast<uint32_t>(FLAGS_max_frame_size);
  options.max_in_flight = static_cast<size_t>(FLAGS_max_in_flight);
  return examples::serve_until_signal("rpc_server", setup->runtime, setup->address,
                                      examples::rpc_handler(options), {},
                                      examples::drain_timeout());
}
