// loadgen --mode rpc: SLRP "echo" requests (examples/rpc/rpc_service.h) with --message_size
// bytes of payload, request id = seq + 1. Answers are matched by id (the server may answer out
// of order); an answer whose payload differs, or an error answer, is a mismatch; an answer whose
// id is not in flight, or an undecodable frame, breaks the stream.
#include <string>

#include "absl/strings/str_cat.h"
#include "bench/loadgen/client_protocol.h"
#include "examples/rpc/rpc_service.h"
#include "net/protocols/frame_codec.h"

namespace shardloop::bench {
namespace {

class RpcProtocol final : public ClientProtocol {
 public:
  explicit RpcProtocol(size_t size) : payload_(size, '\0') {
    for (size_t i = 0; i < size; ++i) payload_[i] = pattern_byte(i);
  }

  void append_request(uint64_t seq, std::string* out) override {
    examples::append_rpc_request({.id = seq + 1, .method = "echo", .payload = payload_}, out);
  }

  ParseOutcome parse(std::string_view in, absl::FunctionRef<void(uint64_t)> answered) override {
    ParseOutcome r;
    for (;;) {
      const rpc::DecodeResult d = decoder_.decode(in.substr(r.consumed));
      if (d.status == rpc::DecodeStatus::kNeedMore) return r;
      examples::RpcReply reply;
      if (d.status == rpc::DecodeStatus::kError) {
        r.broken = absl::StrCat("rpc: ", std::string(rpc::frame_error_message(d.error)));
        return r;
      }
      if (!examples::parse_rpc_reply(decoder_.frame(), &reply) ||
          reply.type == rpc::FrameType::kPing) {
        r.broken = "rpc: an answer that is neither a response nor an error";
        return r;
      }
      if (reply.id == 0) {  // a connection-level error: the server is closing
        r.broken = absl::StrCat("rpc: the server refused the stream: ", std::string(reply.message));
        return r;
      }
      r.consumed += d.consumed;
      if (reply.type != rpc::FrameType::kResponse || reply.payload != payload_) ++r.mismatches;
      answered(reply.id - 1);
    }
  }

 private:
  std::string payload_;
  rpc::FrameDecoder decoder_;
};

}  // namespace

absl::StatusOr<ProtocolFactory> rpc_protocol(const ProtocolOptions& options) {
  const size_t size = options.message_size;
  return ProtocolFactory([size] { return std::make_unique<RpcProtocol>(size); });
}

}  // namespace shardloop::bench
