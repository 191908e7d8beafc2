// echo_server: a TCP echo server on shardloop.
//
// Shows: one SO_REUSEPORT listener per worker, one coroutine per connection, graceful drain on
// SIGINT/SIGTERM, and (--rebalance_ms) connections moving between workers by measured load.
//
// Try it:
//   ./echo_server --port 7000 --workers 2 &
//   printf 'hello\n' | nc -q1 127.0.0.1 7000        # prints hello
//   ./loadgen --port 7000 --connections 100 --duration 3
#include <cstdio>

#include "examples/common/serve_until_signal.h"
#include "examples/common/server_flags.h"
#include "examples/echo/echo_service.h"
#include "gflags/gflags.h"
#include "net/server.h"
#include "runtime/runtime.h"

DEFINE_string(steering, "hash",
              "which worker accepts a connection: hash (kernel default) or cpu (the worker pinned "
              "on the CPU that received it; implies --pin)");
DEFINE_double(work_us, 0,
              "CPU to burn per chunk read before echoing it (a stand-in for request work)");
DEFINE_int32(rebalance_ms, 0,
             "move connections between workers by measured load every this many ms (0: off)");

using namespace shardloop;

int main(int argc, char** argv) {
  examples::parse_server_command_line(&argc, &argv, "TCP echo server on shardloop", 7000);

  if (FLAGS_steering != "hash" && FLAGS_steering != "cpu") {
    std::fprintf(stderr, "echo_server: --steering must be hash or cpu\n");
    return 2;
  }
  const bool cpu_steering = FLAGS_steering == "cpu";
  examples::ServerFlags flags = examples::server_flags();
  flags.pin |= cpu_steering;  // steering to the CPU a packet arrived on needs pinned workers
  auto setup = examples::server_setup(flags);
  if (!setup.ok()) {
    std::fprintf(stderr, "echo_server: %s\n", setup.status().ToString().c_str());
    return 2;
  }

  return examples::serve_until_signal(
      "echo_server", setup->runtime, setup->address,
      examples::serve_echo_with_work(
          std::chrono::nanoseconds(static_cast<int64_t>(FLAGS_work_us * 1000))),
      {.steering = cpu_steering ? net::Steering::kCpu : net::Steering::kHash},
      examples::drain_timeout(), absl::Milliseconds(FLAGS_rebalance_ms));
}
