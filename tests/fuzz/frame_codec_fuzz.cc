// libFuzzer target for the SLRP frame codec (net/protocols/frame_codec.h).
//
// For every input:
//  1. As a received stream, with the default limits and with small ones: no crash, no read past
//     the input, the same transcript in one piece, in pieces derived from the input and byte by
//     byte, and the transcript invariants, which include that re-encoding each decoded frame
//     gives back exactly its bytes.
//  2. As a recipe for the encoder: the input picks a frame type, limits, a buffer size, and
//     field contents with over-reservations; the encoder's reserve/commit calls must succeed or
//     fail exactly as a simple model of the limits says, and a finished frame must decode to
//     the fields that were committed.
// Run with tests/fuzz/run_fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "net/protocols/frame_codec.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace shardloop;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "frame encoder check failed: %s\n", what);
  std::abort();
}

void check_encoder(std::string_view input) {
  if (input.size() < 4) return;
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(input[i]); };
  const auto type = static_cast<rpc::FrameType>(1 + byte(0) % 4);
  rpc::FrameLimits limits;
  limits.max_fields = static_cast<uint16_t>(1 + byte(1) % 8);
  limits.max_frame_size = static_cast<uint32_t>(rpc::kFrameHeaderSize + byte(2) * 2);
  const size_t buffer_size = byte(3) * 2;
  const std::string_view payload = input.substr(4);

  std::vector<char> buffer(buffer_size);
  rpc::FrameEncoder enc(absl::MakeSpan(buffer), limits);
  if (!enc.begin(type, payload.size(), byte(1))) {
    if (buffer_size >= rpc::kFrameHeaderSize || enc.error() != rpc::FrameError::kBufferTooSmall) {
      die("begin");
    }
    return;
  }
  // Fields: the payload cut into pieces; each reserves a few bytes more than it commits.
  std::vector<std::string_view> committed;
  size_t frame_bytes = rpc::kFrameHeaderSize;
  size_t off = 0;
  for (size_t piece : testing::pieces_from_bytes(payload, byte(0))) {
    const std::string_view data = payload.substr(off, piece);
    off += piece;
    const size_t extra = piece % 3;
    // The field's type is its size, so the decoded fields can be checked against both.
    const absl::Span<char> room =
        enc.reserve_field(static_cast<uint16_t>(data.size()), data.size() + extra);
    // The model: fields limit, then frame size limit, then buffer room.
    rpc::FrameError expected = rpc::FrameError::kOk;
    if (committed.size() + 1 > limits.max_fields) {
      expected = rpc::FrameError::kTooManyFields;
    } else if (frame_bytes + rpc::kFieldHeaderSize + data.size() + extra > limits.max_frame_size) {
      expected = rpc::FrameError::kFrameTooLarge;
    } else if (frame_bytes + rpc::kFieldHeaderSize + data.size() + extra > buffer_size) {
      expected = rpc::FrameError::kBufferTooSmall;
    }
    if (enc.error() != expected) die("reserve_field error differs from the model");
    if (expected != rpc::FrameError::kOk) {
      if (!room.empty() || !enc.finish().empty() || !enc.bytes().empty()) die("failed frame kept");
      return;
    }
    if (room.size() != data.size() + extra) die("reservation size");
    if (!data.empty()) std::memcpy(room.data(), data.data(), data.size());
    if (!enc.commit_field(data.size())) die("commit_field");
    committed.push_back(data);
    frame_bytes += rpc::kFieldHeaderSize + data.size();
  }
  const std::string_view frame = enc.finish();
  if (frame.size() != frame_bytes || enc.bytes() != frame) die("finish");

  rpc::FrameDecoder dec(limits);
  const rpc::DecodeResult r = dec.decode(frame);
  if (r.status != rpc::DecodeStatus::kFrame || r.consumed != frame.size()) die("decode");
  const rpc::Frame& f = dec.frame();
  if (f.header.type != type || f.header.request_id != payload.size() || f.header.flags != byte(1) ||
      f.fields.size() != committed.size()) {
    die("decoded header");
  }
  for (size_t i = 0; i < committed.size(); ++i) {
    if (f.fields[i].data != committed[i] || f.fields[i].type != committed[i].size()) {
      die("decoded field");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  rpc::FrameLimits small;
  small.max_frame_size = 64;
  small.max_fields = 3;
  for (const rpc::FrameLimits& limits : {rpc::FrameLimits{}, small}) {
    fuzz::check_delivery(input, limits, testing::frame_transcript);
  }
  check_encoder(input);
  return 0;
}
