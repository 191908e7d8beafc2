#include "bench/loadgen/client_protocol.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace shardloop::bench {
namespace {

struct Mode {
  std::string_view name;
  absl::StatusOr<ProtocolFactory> (*make)(const ProtocolOptions&);
};

constexpr Mode kModes[] = {
    {"echo", echo_protocol},
    {"http", http_protocol},
    {"resp", resp_protocol},
    {"rpc", rpc_protocol},
};

}  // namespace

absl::StatusOr<ProtocolFactory> protocol_for_mode(std::string_view mode,
                                                  const ProtocolOptions& options) {
  for (const Mode& m : kModes) {
    if (m.name == mode) return m.make(options);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown --mode '", std::string(mode), "' (echo, http, resp or rpc)"));
}

}  // namespace shardloop::bench
