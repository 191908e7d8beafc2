// What every example server's command line describes: where to listen and how to run the
// runtime (--host --port --workers --backend --poll_mode --pin). Each server defines those
// gflags itself (defaults and help differ); this turns their values into a checked address and
// RuntimeOptions, so the four servers validate them the same way.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "net/address.h"
#include "runtime/runtime.h"

namespace shardloop::examples {

inline constexpr char kPollModeHelp[] =
    "how workers poll: sharded, global (one shared epoll), throttled (one shared epoll, one "
    "poller at a time) or adaptive; global and throttled use the epoll backend";

struct ServerFlags {
  std::string host;
  int port = 0;
  int workers = 0;
  std::string backend;
  std::string poll_mode;
  bool pin = false;
};

struct ServerSetup {
  net::Address address;
  RuntimeOptions runtime;
};

inline absl::StatusOr<ServerSetup> server_setup(const ServerFlags& flags) {
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

}  // namespace shardloop::examples
