// What every example server's command line describes: where to listen and how to run the
// runtime. The flags themselves (--host --port --workers --backend --poll_mode --pin
// --drain_seconds) are defined once, in server_flags.cc; each server adds its own, names its
// default port, and turns the shared values into a checked address and RuntimeOptions here, so
// the four servers take and validate them the same way.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "net/address.h"
#include "runtime/runtime.h"

namespace shardloop::examples {

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

// Checks the values and builds the address and runtime options; the error names the flag.
absl::StatusOr<ServerSetup> server_setup(const ServerFlags& flags);

// Parses the command line (the shared flags and the server's own; dashes in flag names are
// accepted) with `default_port` as this server's --port default.
void parse_server_command_line(int* argc, char*** argv, const char* usage, int default_port);
// The shared flags' values, after parse_server_command_line().
ServerFlags server_flags();
// --drain_seconds: how long connections may take to finish after SIGINT/SIGTERM.
absl::Duration drain_timeout();

}  // namespace shardloop::examples
