// SLRP frames: shardloop's RPC wire format. A fixed 24-byte header followed by variable-length
// fields, each a {type, size} header and `size` bytes, in the manner of the variable-length
// ring-buffer records of seed 003: small messages cost only what they carry, and a reader finds
// each field from the sizes alone. FrameEncoder writes frames into a caller-provided buffer with
// a reserve/commit API (a field's bytes are produced in place, then its size is fixed);
// FrameDecoder reads them incrementally from a receive buffer, as zero-copy views.
//
// Byte layout. Every integer is little-endian; nothing is padded or aligned.
//
//    0        4     5     6        8                  16           20        22        24
//    +--------+-----+-----+--------+------------------+------------+---------+---------+
//    | magic  | ver | type| flags  |    request id    |  total len | fields  | reserved|
//    | "SLRP" | u8  | u8  |  u16   |       u64        |    u32     |   u16   |  u16 =0 |
//    +--------+-----+-----+--------+------------------+------------+---------+---------+
//    then `fields` field records, back to back, filling exactly `total len` - 24 bytes:
//    +------------+------------+--------------------------+
//    | type  u16  | size  u32  |  `size` bytes of data    |  ...
//    +------------+------------+--------------------------+
//
//  - magic: the four bytes 'S' 'L' 'R' 'P' (0x534C5250 read as a big-endian u32), compared as
//    bytes so a hex dump of a stream shows "SLRP" at every frame boundary.
//  - version: 1. Any other value is refused: a peer that changes the layout bumps it.
//  - type: FrameType (request, response, error, ping); other values are refused.
//  - flags: opaque to the codec, passed through for the RPC layer.
//  - request id: matches a response or error to its request; opaque to the codec.
//  - total len: the whole frame including this header, so a reader knows after 24 bytes how
//    much to buffer, and can refuse an oversized frame before receiving it.
//  - fields: the number of field records (cross-checked against the bytes they occupy).
//  - reserved: zero; refused otherwise so that a future use cannot be silently misread.
//  - field type: opaque to the codec (the RPC layer defines method name, payload, ...).
//
// Thread-safety: FrameEncoder and FrameDecoder are single-owner objects (one connection each);
// the free functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"

namespace shardloop::rpc {

inline constexpr size_t kFrameHeaderSize = 24;
inline constexpr size_t kFieldHeaderSize = 6;
inline constexpr uint8_t kFrameVersion = 1;
inline constexpr char kFrameMagic[4] = {'S', 'L', 'R', 'P'};

enum class FrameType : uint8_t { kRequest = 1, kResponse = 2, kError = 3, kPing = 4 };

enum class FrameError : uint8_t {
  kOk = 0,
  // Decoder (and, for the limits, encoder).
  kBadMagic,
  kUnsupportedVersion,
  kBadType,
  kReservedNotZero,
  kFrameTooShort,       // total len < 24
  kFrameTooLarge,       // total len > FrameLimits::max_frame_size
  kTooManyFields,       // field count > FrameLimits::max_fields
  kTruncatedField,      // the frame ends inside a field's 6-byte header
  kFieldOverrunsFrame,  // a field's size runs past the end of the frame
  kFieldCountMismatch,  // bytes left after the announced fields, or fields missing
  // Encoder only.
  kBufferTooSmall,  // the caller's buffer cannot hold what was asked for
  kMisuse,          // calls out of order (field without begin(), commit above reservation)
};

// A short English description, e.g. "bad magic". Never empty.
std::string_view frame_error_message(FrameError error);

struct FrameLimits {
  // Frames whose total length exceeds this are refused as soon as their header arrives.
  uint32_t max_frame_size = 16 * 1024 * 1024;
  uint16_t max_fields = 1024;
};

struct FrameHeader {
  FrameType type = FrameType::kRequest;
  uint16_t flags = 0;
  uint64_t request_id = 0;
  uint32_t total_length = 0;  // whole frame, header included
  uint16_t field_count = 0;
};

struct Field {
  uint16_t type = 0;
  std::string_view data = {};
};

// A decoded frame; `fields` and every `Field::data` point into the decoder and the caller's input.
struct Frame {
  FrameHeader header;
  absl::Span<const Field> fields = {};

  // The first field of `type`, or nullptr.
  const Field* find(uint16_t type) const;
};

// Bytes a frame with fields of these data sizes occupies.
size_t frame_size(absl::Span<const size_t> field_sizes);

// Writes frames back to back into a caller-provided buffer.
//
//   FrameEncoder enc(absl::MakeSpan(buf));
//   enc.begin(FrameType::kRequest, id);
//   absl::Span<char> room = enc.reserve_field(kPayload, 4096);   // up to 4096 bytes
//   size_t n = produce(room);
//   enc.commit_field(n);                                          // the field is n bytes
//   enc.add_field(kMethod, "echo");                               // reserve + copy + commit
//   std::string_view frame = enc.finish();                        // empty on error
//
// The first failure (buffer full, a limit, a call out of order) makes the rest of the frame's
// calls no-ops and finish() return empty with error() set; the frame's bytes are then not part
// of bytes(). begin() starts over after a failed or finished frame.
//
// Thread-safety: single owner.
class FrameEncoder {
 public:
  explicit FrameEncoder(absl::Span<char> buffer, const FrameLimits& limits = {});

  // Starts a frame after the frames finished so far. Returns false on error.
  bool begin(FrameType type, uint64_t request_id, uint16_t flags = 0);
  // Room for up to `max_size` data bytes of a field of `type`; empty (and error set) when the
  // buffer or the frame limit cannot hold them. One field may be open at a time.
  absl::Span<char> reserve_field(uint16_t type, size_t max_size);
  // Fixes the open field's size (<= what was reserved).
  bool commit_field(size_t size);
  bool add_field(uint16_t type, std::string_view data);
  // Writes the total length and field count; returns the frame's bytes, or empty on error.
  std::string_view finish();

  FrameError error() const { return error_; }
  // The finished frames, back to back.
  std::string_view bytes() const { return {buffer_.data(), finished_}; }

 private:
  bool fail(FrameError e);

  absl::Span<char> buffer_;
  FrameLimits limits_;
  size_t finished_ = 0;     // bytes of finished frames
  size_t frame_start_ = 0;  // offset of the open frame's header
  size_t cursor_ = 0;       // end of the open frame's committed bytes
  size_t reserved_ = 0;     // data bytes reserved for the open field
  uint32_t field_count_ = 0;
  bool frame_open_ = false;
  bool field_open_ = false;
  FrameError error_ = FrameError::kOk;
};

// Appends one frame to `out` (resizing it). Returns kOk or the limit the frame breaks.
FrameError append_frame(FrameType type, uint64_t request_id, uint16_t flags,
                        absl::Span<const Field> fields, std::string* out,
                        const FrameLimits& limits = {});

enum class DecodeStatus { kNeedMore, kFrame, kError };

struct DecodeResult {
  DecodeStatus status = DecodeStatus::kNeedMore;
  // kFrame: bytes of this frame; the next frame starts there.
  size_t consumed = 0;
  // kNeedMore: the input size that lets decode() make progress (24, then the total length), so
  // a reader can size its next read. 0 otherwise.
  size_t need = 0;
  FrameError error = FrameError::kOk;
};

// Incremental decoder. Call decode() with every byte received since the start of the current
// frame; it answers kNeedMore until the whole frame is there, then kFrame with `consumed`, and
// frame() describes it until the next decode(). The caller then drops `consumed` bytes (or
// advances) and calls decode() for the next frame. Header fields are checked as soon as their
// bytes arrive, so garbage or an oversized frame is refused without waiting for it. Errors are
// sticky: the stream cannot be resynchronised, so the connection must be closed.
//
// Thread-safety: single owner.
class FrameDecoder {
 public:
  explicit FrameDecoder(const FrameLimits& limits = {}) : limits_(limits) {}

  DecodeResult decode(std::string_view input);
  const Frame& frame() const { return frame_; }
  // Forgets a sticky error.
  void reset() { error_ = FrameError::kOk; }

 private:
  DecodeResult fail(FrameError e);

  FrameLimits limits_;
  std::vector<Field> fields_;
  Frame frame_;
  FrameError error_ = FrameError::kOk;
};

}  // namespace shardloop::rpc
