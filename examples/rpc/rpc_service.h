// The RPC service of examples/rpc_server, on SLRP frames (net/protocols/frame_codec.h), and the
// client-side helpers that rpc_client, loadgen's rpc mode and the tests share.
//
// A request is a FrameType::kRequest frame whose id the client picks (any u64; ids need not be
// increasing or unique, the server only copies them) with these fields (rpc_field::):
//   kMethod      the method name: "echo", "sum" or "sleep"                       (required)
//   kPayload     the argument bytes                                              (optional)
//   kDeadlineMs  u32 little-endian: the request's budget in milliseconds, counted from when
//                the server decoded it                                           (optional)
// The answer carries the same id: a kResponse frame with a kPayload field, or a kError frame
// with kErrorCode (u16 little-endian, RpcError) and kErrorMessage (English text). A kPing frame
// is answered with a kPing frame of the same id.
//
// Methods:
//   echo   returns its payload.
//   sum    the payload is 0 or more little-endian i64 values; returns their sum as one i64.
//          A payload whose size is not a multiple of 8, or a sum that overflows, is kBadArgument.
//   sleep  the payload is a u32 little-endian millisecond count (at most max_sleep); answers
//          with an empty payload after that long. It exists to show that answers go out as each
//          request completes (a pipelined echo behind a sleep is answered first), and deadlines.
//
// Deadlines are a request field, enforced by the server: a request whose budget runs out before
// its answer is ready is answered with kDeadlineExceeded at the deadline and its work dropped
// (a budget of 0 is exceeded at once). The client needs no timer of its own for them.
//
// Pipelining: the server decodes every request it has received and answers each as soon as it
// completes, so answers can arrive in a different order than their requests; clients match
// them by id.
//
// Errors: an application error (unknown method, bad argument, missing method, deadline, too many
// requests in flight) is answered with a kError frame and the connection stays. A framing error
// (bad magic or version, an oversized or malformed frame, a kResponse/kError frame from the
// client) is answered with a kError frame, after the answers already due, and then the
// connection is closed: nothing after a framing error can be trusted to start a frame. The
// error frame of an oversized frame carries that frame's id; other framing errors carry id 0.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "net/connection.h"
#include "net/protocols/frame_codec.h"
#include "net/server.h"
#include "runtime/task.h"

namespace shardloop::examples {

// Field types of the service's frames (the codec leaves their meaning to this layer).
namespace rpc_field {
inline constexpr uint16_t kMethod = 1;
inline constexpr uint16_t kPayload = 2;
inline constexpr uint16_t kDeadlineMs = 3;
inline constexpr uint16_t kErrorCode = 4;
inline constexpr uint16_t kErrorMessage = 5;
}  // namespace rpc_field

enum class RpcError : uint16_t {
  kNone = 0,
  kUnknownMethod = 1,
  kBadArgument = 2,
  kDeadlineExceeded = 3,
  kOverloaded = 4,     // more than max_in_flight requests waiting on one connection
  kBadFrame = 5,       // a framing error; the connection closes
  kFrameTooLarge = 6,  // a frame above max_frame_size; the connection closes
};

// "unknown method", "bad argument", ... Never empty.
std::string_view rpc_error_name(RpcError error);

struct RpcOptions {
  // Frames above 1 MiB are refused: the service's payloads are small, and a limit far below the
  // codec's 16 MiB default keeps one connection from making the server buffer a lot.
  rpc::FrameLimits limits = {.max_frame_size = 1024 * 1024, .max_fields = 16};
  // Requests waiting (sleeping) at once on one connection; beyond it kOverloaded.
  size_t max_in_flight = 1024;
  absl::Duration max_sleep = absl::Seconds(10);
};

// Serves one connection with default options.
Task<void> serve_rpc(net::Connection conn);
// A Server handler with `options`.
net::ConnectionHandler rpc_handler(RpcOptions options);

// ---- client side ----

struct RpcRequest {
  uint64_t id = 0;
  std::string_view method;
  std::string_view payload;
  int64_t deadline_ms = -1;  // < 0: no deadline field
};

// Appends the request's frame to `out`.
void append_rpc_request(const RpcRequest& request, std::string* out);

struct RpcReply {
  uint64_t id = 0;
  rpc::FrameType type = rpc::FrameType::kResponse;
  RpcError error = RpcError::kNone;  // kNone for a response or a ping
  std::string_view payload;          // a response's payload
  std::string_view message;          // an error's message
};

// Interprets a frame decoded from the server's stream. False when it is not a well-formed
// answer (a request frame, or an error without a 2-byte code).
bool parse_rpc_reply(const rpc::Frame& frame, RpcReply* reply);

// The little-endian encodings the service uses.
std::string encode_i64s(absl::Span<const int64_t> values);
std::string encode_u32(uint32_t value);
bool decode_i64(std::string_view bytes, int64_t* value);

}  // namespace shardloop::examples
