#include "examples/common/server_flags.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "examples/common/cli.h"
#include "gflags/gflags.h"

DEFINE_string(host, "127.0.0.1", "address to listen on (numeric IPv4/IPv6 or localhost)");
// The real default is each server's own (parse_server_command_line sets it before parsing).
DEFINE_int32(port, 0, "TCP port (0: pick a free one and print it)");
DEFINE_int32(workers, 0, "worker threads (0: one per CPU this process may use)");
DEFINE_string(backend, "auto", "poller backend: epoll, io_uring or auto");
DEFINE_string(poll_mode, "adaptive",
              "how workers poll: sharded, global (one shared epoll), throttled (one shared epoll, "
              "one poller at a time) or adaptive; global and throttled use the epoll backend");
DEFINE_bool(pin, false, "pin worker i to the i-th allowed CPU");
DEFINE_double(drain_seconds, 5, "on SIGINT/SIGTERM, how long connections may take to finish");

namespace shardloop::examples {

absl::StatusOr<ServerSetup> server_setup(const ServerFlags& flags) {
  if (flags.port < 0 || flags.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--port must be 0..65535, not ", flags.port));
  }
  if (flags.workers < 0) return absl::InvalidArgumentError("--workers must be >= 0");
  auto backend = parse_backend(flags.backend);
  if (!backend.ok()) return backend.status();
  auto mode = parse_poll_mode(flags.poll_mode);
  if (!mode.ok()) return mode.status();
  if (uses_shared_epoll(*mode) && *backend == Backend::kIoUring) {
    return absl::InvalidArgumentError(absl::StrCat("--poll_mode=", flags.poll_mode,
                                                   " shares one epoll instance and needs "
                                                   "--backend=epoll (or auto), not io_uring"));
  }
  auto address = net::Address::from_host_port(flags.host, static_cast<uint16_t>(flags.port));
  if (!address.ok()) return address.status();
  return ServerSetup{*address, RuntimeOptions{.workers = static_cast<size_t>(flags.workers),
                                              .pin_cpus = flags.pin,
                                              .backend = *backend,
                                              .poll_mode = *mode}};
}

void parse_server_command_line(int* argc, char*** argv, const char* usage, int default_port) {
  gflags::SetCommandLineOptionWithMode("port", std::to_string(default_port).c_str(),
                                       gflags::SET_FLAGS_DEFAULT);
  cli::accept_dashed_flags(*argc, *argv);
  gflags::SetUsageMessage(usage);
  gflags::ParseCommandLineFlags(argc, argv, true);
}

ServerFlags server_flags() {
  return {.host = FLAGS_host,
          .port = FLAGS_port,
          .workers = FLAGS_workers,
          .backend = FLAGS_backend,
          .poll_mode = FLAGS_poll_mode,
          .pin = FLAGS_pin};
}

absl::Duration drain_timeout() { return absl::Seconds(FLAGS_drain_seconds); }

}  // namespace shardloop::examples
