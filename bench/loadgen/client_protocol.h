// ClientProtocol: what loadgen needs to know about one request/response protocol, for one
// connection. The driver (loadgen.cc) decides when to send and measures; a protocol only writes
// requests and recognises answers. One small file per mode implements it:
//
//   echo_mode.cc   --message_size bytes, echoed back byte for byte
//   http_mode.cc   GET / HTTP/1.1 with keep-alive; an answer is right when its status is 200
//   resp_mode.cc   RESP2 SET/GET/PING (a mix, or one --resp_command), replies validated
//   rpc_mode.cc    SLRP "echo" requests (examples/rpc), answers matched by id and payload
//
// Requests are numbered per connection: 0, 1, 2, ... (`seq`). parse() reports each complete
// answer with the seq of the request it answers; the driver checks that seq is in flight.
//
// Thread-safety: a ClientProtocol belongs to one connection, on one worker. A ProtocolFactory is
// called on every loadgen worker at once, so what it shares between the protocols it makes must
// be immutable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace shardloop::bench {

struct ProtocolOptions {
  size_t message_size = 64;          // echo/rpc payload, resp SET value
  std::string resp_command = "mix";  // resp: mix, ping, set or get
};

struct ParseOutcome {
  size_t consumed = 0;      // bytes of the complete answers at the front of the input
  uint64_t mismatches = 0;  // answers that arrived but were wrong (echo: wrong bytes)
  std::string broken;       // non-empty: the stream makes no sense (why); the connection ends
};

class ClientProtocol {
 public:
  virtual ~ClientProtocol() = default;
  // Appends request `seq` to `out`.
  virtual void append_request(uint64_t seq, std::string* out) = 0;
  // Reads the complete answers at the front of `in` (every unconsumed byte received), calling
  // `answered(seq)` for each. A partial answer is left for the next call, with more bytes.
  virtual ParseOutcome parse(std::string_view in, absl::FunctionRef<void(uint64_t)> answered) = 0;
};

using ProtocolFactory = std::function<std::unique_ptr<ClientProtocol>()>;

// The factory for `--mode`, or InvalidArgument (unknown mode, bad option for it).
absl::StatusOr<ProtocolFactory> protocol_for_mode(std::string_view mode,
                                                  const ProtocolOptions& options);

// One per mode file.
absl::StatusOr<ProtocolFactory> echo_protocol(const ProtocolOptions& options);
absl::StatusOr<ProtocolFactory> http_protocol(const ProtocolOptions& options);
absl::StatusOr<ProtocolFactory> resp_protocol(const ProtocolOptions& options);
absl::StatusOr<ProtocolFactory> rpc_protocol(const ProtocolOptions& options);

// The byte at offset `i` of every echo/rpc payload and resp value.
inline char pattern_byte(size_t i) { return static_cast<char>('a' + (i * 7 + i / 251) % 26); }

}  // namespace shardloop::bench
