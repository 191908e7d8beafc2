// loadgen --mode echo: each request is --message_size bytes of a fixed pattern; its answer is
// the same bytes. Wrong bytes are counted one by one, as mismatches.
#include <cstring>

#include "bench/loadgen/client_protocol.h"

namespace shardloop::bench {
namespace {

class EchoProtocol final : public ClientProtocol {
 public:
  explicit EchoProtocol(size_t size) : message_(size, '\0') {
    for (size_t i = 0; i < size; ++i) message_[i] = pattern_byte(i);
  }

  void append_request(uint64_t, std::string* out) override { out->append(message_); }

  ParseOutcome parse(std::string_view in, absl::FunctionRef<void(uint64_t)> answered) override {
    ParseOutcome r;
    const size_t size = message_.size();
    for (; in.size() - r.consumed >= size; r.consumed += size) {
      const char* got = in.data() + r.consumed;
      if (std::memcmp(got, message_.data(), size) != 0) {
        for (size_t i = 0; i < size; ++i) r.mismatches += got[i] != message_[i];
      }
      answered(next_++);
    }
    return r;
  }

 private:
  std::string message_;
  uint64_t next_ = 0;  // echoes come back in request order
};

}  // namespace

absl::StatusOr<ProtocolFactory> echo_protocol(const ProtocolOptions& options) {
  const size_t size = options.message_size;
  return ProtocolFactory([size] { return std::make_unique<EchoProtocol>(size); });
}

}  // namespace shardloop::bench
