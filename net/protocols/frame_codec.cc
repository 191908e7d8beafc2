#include "net/protocols/frame_codec.h"

#include <cstring>

namespace shardloop::rpc {
namespace {

// Header field offsets (see the diagram in frame_codec.h).
constexpr size_t kOffVersion = 4;
constexpr size_t kOffType = 5;
constexpr size_t kOffFlags = 6;
constexpr size_t kOffRequestId = 8;
constexpr size_t kOffTotalLength = 16;
constexpr size_t kOffFieldCount = 20;
constexpr size_t kOffReserved = 22;

// Byte-wise little-endian access: correct on any host and for any alignment; compilers turn it
// into a single load or store on x86-64 and arm64.
template <typename T>
T load_le(const char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    v |= static_cast<T>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}

template <typename T>
void store_le(char* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

bool valid_type(uint8_t t) { return t >= 1 && t <= 4; }

}  // namespace

std::string_view frame_error_message(FrameError error) {
  switch (error) {
    case FrameError::kOk:
      return "ok";
    case FrameError::kBadMagic:
      return "bad magic";
    case FrameError::kUnsupportedVersion:
      return "unsupported version";
    case FrameError::kBadType:
      return "bad frame type";
    case FrameError::kReservedNotZero:
      return "reserved header bytes not zero";
    case FrameError::kFrameTooShort:
      return "frame shorter than its header";
    case FrameError::kFrameTooLarge:
      return "frame too large";
    case FrameError::kTooManyFields:
      return "too many fields";
    case FrameError::kTruncatedField:
      return "truncated field";
    case FrameError::kFieldOverrunsFrame:
      return "field overruns frame";
    case FrameError::kFieldCountMismatch:
      return "field count mismatch";
    case FrameError::kBufferTooSmall:
      return "buffer too small";
    case FrameError::kMisuse:
      return "encoder calls out of order";
  }
  return "unknown frame error";
}

const Field* Frame::find(uint16_t type) const {
  for (const Field& f : fields) {
    if (f.type == type) return &f;
  }
  return nullptr;
}

size_t frame_size(absl::Span<const size_t> field_sizes) {
  size_t n = kFrameHeaderSize;
  for (size_t s : field_sizes) n += kFieldHeaderSize + s;
  return n;
}

// ---- Encoder ----

FrameEncoder::FrameEncoder(absl::Span<char> buffer, const FrameLimits& limits)
    : buffer_(buffer), limits_(limits) {}

bool FrameEncoder::fail(FrameError e) {
  if (error_ == FrameError::kOk) error_ = e;
  frame_open_ = false;
  field_open_ = false;
  return false;
}

bool FrameEncoder::begin(FrameType type, uint64_t request_id, uint16_t flags) {
  error_ = FrameError::kOk;
  frame_open_ = false;
  field_open_ = false;
  if (!valid_type(static_cast<uint8_t>(type))) return fail(FrameError::kBadType);
  if (buffer_.size() - finished_ < kFrameHeaderSize) return fail(FrameError::kBufferTooSmall);
  if (limits_.max_frame_size < kFrameHeaderSize) return fail(FrameError::kFrameTooLarge);
  frame_start_ = finished_;
  char* h = buffer_.data() + frame_start_;
  std::memcpy(h, kFrameMagic, 4);
  h[kOffVersion] = static_cast<char>(kFrameVersion);
  h[kOffType] = static_cast<char>(type);
  store_le<uint16_t>(h + kOffFlags, flags);
  store_le<uint64_t>(h + kOffRequestId, request_id);
  // Total length and field count are written by finish(), once known.
  store_le<uint32_t>(h + kOffTotalLength, 0);
  store_le<uint16_t>(h + kOffFieldCount, 0);
  store_le<uint16_t>(h + kOffReserved, 0);
  cursor_ = frame_start_ + kFrameHeaderSize;
  field_count_ = 0;
  frame_open_ = true;
  return true;
}

absl::Span<char> FrameEncoder::reserve_field(uint16_t type, size_t max_size) {
  if (!frame_open_ || field_open_) {
    fail(FrameError::kMisuse);
    return {};
  }
  if (field_count_ + 1 > limits_.max_fields) {
    fail(FrameError::kTooManyFields);
    return {};
  }
  const size_t frame_bytes = cursor_ - frame_start_;
  // Compare without overflow: max_size may be anything a caller passes.
  if (max_size > limits_.max_frame_size ||
      frame_bytes + kFieldHeaderSize > limits_.max_frame_size - max_size) {
    fail(FrameError::kFrameTooLarge);
    return {};
  }
  if (max_size > buffer_.size() || cursor_ + kFieldHeaderSize > buffer_.size() - max_size) {
    fail(FrameError::kBufferTooSmall);
    return {};
  }
  store_le<uint16_t>(buffer_.data() + cursor_, type);
  reserved_ = max_size;
  field_open_ = true;
  return buffer_.subspan(cursor_ + kFieldHeaderSize, max_size);
}

bool FrameEncoder::commit_field(size_t size) {
  if (!frame_open_ || !field_open_ || size > reserved_) return fail(FrameError::kMisuse);
  store_le<uint32_t>(buffer_.data() + cursor_ + 2, static_cast<uint32_t>(size));
  cursor_ += kFieldHeaderSize + size;
  ++field_count_;
  field_open_ = false;
  return true;
}

bool FrameEncoder::add_field(uint16_t type, std::string_view data) {
  absl::Span<char> room = reserve_field(type, data.size());
  if (error_ != FrameError::kOk) return false;
  if (!data.empty()) std::memcpy(room.data(), data.data(), data.size());
  return commit_field(data.size());
}

std::string_view FrameEncoder::finish() {
  if (!frame_open_ || field_open_) {
    fail(FrameError::kMisuse);
    return {};
  }
  char* h = buffer_.data() + frame_start_;
  const size_t total = cursor_ - frame_start_;
  store_le<uint32_t>(h + kOffTotalLength, static_cast<uint32_t>(total));
  store_le<uint16_t>(h + kOffFieldCount, static_cast<uint16_t>(field_count_));
  frame_open_ = false;
  finished_ = cursor_;
  return {h, total};
}

FrameError append_frame(FrameType type, uint64_t request_id, uint16_t flags,
                        absl::Span<const Field> fields, std::string* out,
                        const FrameLimits& limits) {
  size_t size = kFrameHeaderSize;
  for (const Field& f : fields) size += kFieldHeaderSize + f.data.size();
  const size_t old = out->size();
  out->resize(old + size);
  FrameEncoder enc(absl::MakeSpan(out->data() + old, size), limits);
  enc.begin(type, request_id, flags);
  for (const Field& f : fields) {
    if (!enc.add_field(f.type, f.data)) break;
  }
  if (enc.finish().empty()) {
    out->resize(old);
    return enc.error();
  }
  return FrameError::kOk;
}

// ---- Decoder ----

DecodeResult FrameDecoder::fail(FrameError e) {
  error_ = e;
  return {.status = DecodeStatus::kError, .error = e};
}

DecodeResult FrameDecoder::decode(std::string_view input) {
  if (error_ != FrameError::kOk) return {.status = DecodeStatus::kError, .error = error_};
  const char* p = input.data();
  const size_t n = input.size();

  // Check each header field as soon as its bytes are present, in offset order, so that the
  // verdict never depends on how the bytes were split across reads.
  for (size_t i = 0; i < 4 && i < n; ++i) {
    if (p[i] != kFrameMagic[i]) return fail(FrameError::kBadMagic);
  }
  if (n > kOffVersion && static_cast<uint8_t>(p[kOffVersion]) != kFrameVersion) {
    return fail(FrameError::kUnsupportedVersion);
  }
  if (n > kOffType && !valid_type(static_cast<uint8_t>(p[kOffType]))) {
    return fail(FrameError::kBadType);
  }
  if (n < kOffFieldCount) return {.status = DecodeStatus::kNeedMore, .need = kFrameHeaderSize};
  const uint32_t total = load_le<uint32_t>(p + kOffTotalLength);
  if (total < kFrameHeaderSize) return fail(FrameError::kFrameTooShort);
  if (total > limits_.max_frame_size) return fail(FrameError::kFrameTooLarge);
  if (n < kOffReserved) return {.status = DecodeStatus::kNeedMore, .need = kFrameHeaderSize};
  const uint16_t count = load_le<uint16_t>(p + kOffFieldCount);
  if (count > limits_.max_fields) return fail(FrameError::kTooManyFields);
  if (n < kFrameHeaderSize) return {.status = DecodeStatus::kNeedMore, .need = kFrameHeaderSize};
  if (load_le<uint16_t>(p + kOffReserved) != 0) return fail(FrameError::kReservedNotZero);
  if (n < total) return {.status = DecodeStatus::kNeedMore, .need = total};

  // The whole frame is here: walk its fields.
  fields_.clear();
  size_t off = kFrameHeaderSize;
  for (uint32_t i = 0; i < count; ++i) {
    if (total - off < kFieldHeaderSize) {
      // Nothing left at all means fields are missing; a partial header is a truncated field.
      return fail(off == total ? FrameError::kFieldCountMismatch : FrameError::kTruncatedField);
    }
    const uint16_t type = load_le<uint16_t>(p + off);
    const uint32_t size = load_le<uint32_t>(p + off + 2);
    off += kFieldHeaderSize;
    if (size > total - off) return fail(FrameError::kFieldOverrunsFrame);
    fields_.push_back({.type = type, .data = std::string_view(p + off, size)});
    off += size;
  }
  if (off != total) return fail(FrameError::kFieldCountMismatch);

  frame_.header = {.type = static_cast<FrameType>(p[kOffType]),
                   .flags = load_le<uint16_t>(p + kOffFlags),
                   .request_id = load_le<uint64_t>(p + kOffRequestId),
                   .total_length = total,
                   .field_count = count};
  frame_.fields = absl::MakeConstSpan(fields_);
  return {.status = DecodeStatus::kFrame, .consumed = total};
}

}  // namespace shardloop::rpc
