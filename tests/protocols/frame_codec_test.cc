// SLRP frame codec: the byte layout (golden bytes), every decoder error (early, before the whole
// frame arrives, where the header allows), the encoder's reserve/commit API and its failures,
// and seeded round trips in random pieces.
#include "net/protocols/frame_codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tests/net/test_support.h"
#include "tests/protocols/seed.h"
#include "tests/protocols/transcript.h"

namespace shardloop::rpc {
namespace {

using namespace std::string_literals;
using testing::to_string;

// A request, id 0x0102030405060708, flags 0x0a0b, fields {7: "ab"} and {0x0102: ""}.
const std::string kGolden =
    "SLRP"                               // magic
    "\x01"                               // version
    "\x01"                               // type: request
    "\x0b\x0a"                           // flags, little-endian
    "\x08\x07\x06\x05\x04\x03\x02\x01"s  // request id
    + "\x26\x00\x00\x00"s                // total length 38 = 24 + (6 + 2) + (6 + 0)
    + "\x02\x00"s                        // field count
    + "\x00\x00"s                        // reserved
    +
    "\x07\x00"
    "\x02\x00\x00\x00"
    "ab"s  // field 7, size 2
    +
    "\x02\x01"
    "\x00\x00\x00\x00"s;  // field 0x0102, size 0

std::string header(std::string_view magic, uint8_t version, uint8_t type, uint32_t total,
                   uint16_t count, uint16_t reserved = 0) {
  std::string h(magic);
  h += static_cast<char>(version);
  h += static_cast<char>(type);
  h += "\0\0"s;               // flags
  h += std::string(8, '\0');  // request id
  for (int i = 0; i < 4; ++i) h += static_cast<char>((total >> (8 * i)) & 0xff);
  h += static_cast<char>(count & 0xff);
  h += static_cast<char>(count >> 8);
  h += static_cast<char>(reserved & 0xff);
  h += static_cast<char>(reserved >> 8);
  return h;
}

std::string field(uint16_t type, std::string_view data, uint32_t size) {
  std::string f;
  f += static_cast<char>(type & 0xff);
  f += static_cast<char>(type >> 8);
  for (int i = 0; i < 4; ++i) f += static_cast<char>((size >> (8 * i)) & 0xff);
  return f + std::string(data);
}

TEST(FrameCodec, EncoderWritesTheDocumentedLayout) {
  ASSERT_EQ(kGolden.size(), 38u);
  std::string buf(64, '\xee');
  FrameEncoder enc(absl::MakeSpan(buf));
  ASSERT_TRUE(enc.begin(FrameType::kRequest, 0x0102030405060708ull, 0x0a0b));
  ASSERT_TRUE(enc.add_field(7, "ab"));
  ASSERT_TRUE(enc.add_field(0x0102, ""));
  const std::string_view frame = enc.finish();
  EXPECT_EQ(testing::escape(frame), testing::escape(kGolden));
  EXPECT_EQ(enc.bytes(), frame);
  EXPECT_EQ(frame_size({2, 0}), 38u);
}

TEST(FrameCodec, DecoderReadsTheDocumentedLayout) {
  FrameDecoder dec;
  const std::string input = kGolden + "SLRP";  // the next frame's start is not touched
  const DecodeResult r = dec.decode(input);    // (the frame's fields are views into `input`)
  ASSERT_EQ(r.status, DecodeStatus::kFrame) << frame_error_message(r.error);
  EXPECT_EQ(r.consumed, 38u);
  const Frame& f = dec.frame();
  EXPECT_EQ(f.header.type, FrameType::kRequest);
  EXPECT_EQ(f.header.flags, 0x0a0b);
  EXPECT_EQ(f.header.request_id, 0x0102030405060708ull);
  EXPECT_EQ(f.header.total_length, 38u);
  ASSERT_EQ(f.fields.size(), 2u);
  EXPECT_EQ(f.fields[0].type, 7);
  EXPECT_EQ(f.fields[0].data, "ab");
  EXPECT_EQ(f.fields[1].type, 0x0102);
  EXPECT_EQ(f.fields[1].data, "");
  ASSERT_NE(f.find(0x0102), nullptr);
  EXPECT_EQ(f.find(9), nullptr);
}

TEST(FrameCodec, NeedTellsHowMuchToBuffer) {
  FrameDecoder dec;
  for (size_t n = 0; n < 24; ++n) {
    const DecodeResult r = dec.decode(std::string_view(kGolden).substr(0, n));
    ASSERT_EQ(r.status, DecodeStatus::kNeedMore) << n;
    EXPECT_EQ(r.need, 24u);
  }
  for (size_t n = 24; n < kGolden.size(); ++n) {
    const DecodeResult r = dec.decode(std::string_view(kGolden).substr(0, n));
    ASSERT_EQ(r.status, DecodeStatus::kNeedMore) << n;
    EXPECT_EQ(r.need, 38u);
  }
}

struct ErrorCase {
  const char* name;
  std::string input;
  FrameError error;
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

std::vector<ErrorCase> error_cases() {
  const std::string good_tail = field(1, "x", 1);
  return {
      {"bad_magic_first_byte", "X", FrameError::kBadMagic},
      {"bad_magic_last_byte", "SLRX", FrameError::kBadMagic},
      {"http_on_the_rpc_port", "GET / HTTP/1.1\r\n", FrameError::kBadMagic},
      {"version_0", "SLRP\x00"s, FrameError::kUnsupportedVersion},
      {"version_2", "SLRP\x02", FrameError::kUnsupportedVersion},
      {"type_0", "SLRP\x01\x00"s, FrameError::kBadType},
      {"type_5", "SLRP\x01\x05", FrameError::kBadType},
      {"total_below_header", header("SLRP", 1, 1, 23, 0).substr(0, 20), FrameError::kFrameTooShort},
      {"total_over_limit", header("SLRP", 1, 1, 16 * 1024 * 1024 + 1, 0).substr(0, 20),
       FrameError::kFrameTooLarge},
      {"total_max_u32", header("SLRP", 1, 1, 0xffffffffu, 0).substr(0, 20),
       FrameError::kFrameTooLarge},
      {"too_many_fields", header("SLRP", 1, 2, 24, 1025).substr(0, 22), FrameError::kTooManyFields},
      {"reserved_not_zero", header("SLRP", 1, 3, 24, 0, 1), FrameError::kReservedNotZero},
      {"truncated_field", header("SLRP", 1, 1, 27, 1) + "\x01\x00\x00"s,
       FrameError::kTruncatedField},
      {"field_overruns_frame", header("SLRP", 1, 1, 24 + 6 + 1, 1) + field(1, "x", 2),
       FrameError::kFieldOverrunsFrame},
      {"field_size_huge", header("SLRP", 1, 1, 24 + 6 + 1, 1) + field(1, "x", 0xffffffffu),
       FrameError::kFieldOverrunsFrame},
      {"fewer_fields_than_announced", header("SLRP", 1, 1, 24 + 7, 2) + good_tail,
       FrameError::kFieldCountMismatch},
      {"bytes_after_the_fields", header("SLRP", 1, 1, 24 + 7 + 3, 1) + good_tail + "abc",
       FrameError::kFieldCountMismatch},
      {"no_fields_but_bytes", header("SLRP", 1, 4, 24 + 7, 0) + good_tail,
       FrameError::kFieldCountMismatch},
      {"second_frame_bad", kGolden + "SLRQ", FrameError::kBadMagic},
  };
}

class FrameErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(FrameErrorTest, Reported) {
  const ErrorCase& c = GetParam();
  const auto t = testing::frame_transcript(c.input, {}, {c.input.size()});
  EXPECT_EQ(t.back(), "error " + std::string(frame_error_message(c.error))) << to_string(t);
  EXPECT_FALSE(testing::has_violation(t)) << to_string(t);
  EXPECT_EQ(to_string(t), to_string(testing::frame_transcript(
                              c.input, {}, testing::byte_by_byte(c.input.size()))));
}

TEST_P(FrameErrorTest, Sticky) {
  const ErrorCase& c = GetParam();
  FrameDecoder dec;
  std::string_view in = c.input;
  DecodeResult r;
  while ((r = dec.decode(in)).status == DecodeStatus::kFrame) in.remove_prefix(r.consumed);
  ASSERT_EQ(r.status, DecodeStatus::kError);
  EXPECT_EQ(r.error, c.error);
  EXPECT_EQ(dec.decode(kGolden).error, c.error);
  dec.reset();
  EXPECT_EQ(dec.decode(kGolden).status, DecodeStatus::kFrame);
}

INSTANTIATE_TEST_SUITE_P(All, FrameErrorTest, ::testing::ValuesIn(error_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(FrameCodec, ConfigurableLimits) {
  FrameLimits limits;
  limits.max_frame_size = 38;
  limits.max_fields = 2;
  FrameDecoder ok(limits);
  EXPECT_EQ(ok.decode(kGolden).status, DecodeStatus::kFrame);
  limits.max_frame_size = 37;
  FrameDecoder small(limits);
  EXPECT_EQ(small.decode(kGolden).error, FrameError::kFrameTooLarge);
  limits.max_frame_size = 38;
  limits.max_fields = 1;
  FrameDecoder few(limits);
  EXPECT_EQ(few.decode(kGolden).error, FrameError::kTooManyFields);
}

TEST(FrameEncoder, ReserveThenCommitFewerBytes) {
  std::string buf(100, '\0');
  FrameEncoder enc(absl::MakeSpan(buf));
  ASSERT_TRUE(enc.begin(FrameType::kResponse, 9));
  absl::Span<char> room = enc.reserve_field(3, 50);
  ASSERT_EQ(room.size(), 50u);
  std::memcpy(room.data(), "partial", 7);
  ASSERT_TRUE(enc.commit_field(7));
  ASSERT_TRUE(enc.add_field(4, "next"));
  const std::string_view frame = enc.finish();
  ASSERT_EQ(frame.size(), 24u + 6 + 7 + 6 + 4);
  FrameDecoder dec;
  ASSERT_EQ(dec.decode(frame).status, DecodeStatus::kFrame);
  EXPECT_EQ(dec.frame().fields[0].data, "partial");
  EXPECT_EQ(dec.frame().fields[1].data, "next");
}

TEST(FrameEncoder, FramesBackToBack) {
  std::string buf(200, '\0');
  FrameEncoder enc(absl::MakeSpan(buf));
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(enc.begin(FrameType::kPing, id));
    ASSERT_FALSE(enc.finish().empty());
  }
  EXPECT_EQ(enc.bytes().size(), 72u);
  FrameDecoder dec;
  std::string_view in = enc.bytes();
  for (uint64_t id = 1; id <= 3; ++id) {
    const DecodeResult r = dec.decode(in);
    ASSERT_EQ(r.status, DecodeStatus::kFrame);
    EXPECT_EQ(dec.frame().header.request_id, id);
    EXPECT_EQ(dec.frame().header.type, FrameType::kPing);
    in.remove_prefix(r.consumed);
  }
  EXPECT_TRUE(in.empty());
}

TEST(FrameEncoder, BufferTooSmall) {
  std::string buf(30, '\0');
  FrameEncoder enc(absl::MakeSpan(buf));
  ASSERT_TRUE(enc.begin(FrameType::kRequest, 1));
  EXPECT_TRUE(enc.reserve_field(1, 1).empty());  // 24 + 6 + 1 > 30
  EXPECT_EQ(enc.error(), FrameError::kBufferTooSmall);
  EXPECT_FALSE(enc.add_field(1, ""));  // no-ops after the first failure
  EXPECT_TRUE(enc.finish().empty());
  EXPECT_TRUE(enc.bytes().empty());
  // A new frame starts clean, and fits without the field.
  ASSERT_TRUE(enc.begin(FrameType::kRequest, 2));
  EXPECT_EQ(enc.finish().size(), 24u);

  std::string tiny(23, '\0');
  FrameEncoder none(absl::MakeSpan(tiny));
  EXPECT_FALSE(none.begin(FrameType::kRequest, 1));
  EXPECT_EQ(none.error(), FrameError::kBufferTooSmall);
}

TEST(FrameEncoder, LimitsAreEnforcedOnTheWayOut) {
  std::string buf(1000, '\0');
  FrameLimits limits;
  limits.max_frame_size = 40;
  limits.max_fields = 2;
  FrameEncoder enc(absl::MakeSpan(buf), limits);
  ASSERT_TRUE(enc.begin(FrameType::kRequest, 1));
  EXPECT_TRUE(enc.reserve_field(1, 11).empty());  // 24 + 6 + 11 > 40
  EXPECT_EQ(enc.error(), FrameError::kFrameTooLarge);
  ASSERT_TRUE(enc.begin(FrameType::kRequest, 1));
  EXPECT_TRUE(enc.reserve_field(1, SIZE_MAX).empty());
  EXPECT_EQ(enc.error(), FrameError::kFrameTooLarge);
  ASSERT_TRUE(enc.begin(FrameType::kRequest, 1));
  ASSERT_TRUE(enc.add_field(1, ""));
  ASSERT_TRUE(enc.add_field(2, ""));
  EXPECT_FALSE(enc.add_field(3, ""));
  EXPECT_EQ(enc.error(), FrameError::kTooManyFields);
}

TEST(FrameEncoder, CallsOutOfOrder) {
  std::string buf(100, '\0');
  {
    FrameEncoder enc(absl::MakeSpan(buf));
    EXPECT_TRUE(enc.reserve_field(1, 1).empty());
    EXPECT_EQ(enc.error(), FrameError::kMisuse);
  }
  {
    FrameEncoder enc(absl::MakeSpan(buf));
    enc.begin(FrameType::kRequest, 1);
    EXPECT_FALSE(enc.commit_field(0));
    EXPECT_EQ(enc.error(), FrameError::kMisuse);
  }
  {
    FrameEncoder enc(absl::MakeSpan(buf));
    enc.begin(FrameType::kRequest, 1);
    enc.reserve_field(1, 4);
    EXPECT_FALSE(enc.commit_field(5));
    EXPECT_EQ(enc.error(), FrameError::kMisuse);
  }
  {
    FrameEncoder enc(absl::MakeSpan(buf));
    enc.begin(FrameType::kRequest, 1);
    enc.reserve_field(1, 4);
    EXPECT_TRUE(enc.reserve_field(2, 4).empty());
    EXPECT_TRUE(enc.finish().empty());
    EXPECT_EQ(enc.error(), FrameError::kMisuse);
  }
  {
    FrameEncoder enc(absl::MakeSpan(buf));
    EXPECT_TRUE(enc.finish().empty());
    EXPECT_FALSE(enc.begin(static_cast<FrameType>(9), 1));
    EXPECT_EQ(enc.error(), FrameError::kBadType);
  }
}

TEST(FrameCodec, AppendFrameRefusesWhatTheLimitsRefuse) {
  std::string out = "x";
  const std::vector<Field> fields = {{1, "abc"}};
  FrameLimits limits;
  limits.max_frame_size = 32;
  EXPECT_EQ(append_frame(FrameType::kRequest, 1, 0, fields, &out, limits),
            FrameError::kFrameTooLarge);
  EXPECT_EQ(out, "x");
  EXPECT_EQ(append_frame(FrameType::kRequest, 1, 0, fields, &out), FrameError::kOk);
  EXPECT_EQ(out.size(), 1u + 24 + 6 + 3);
}

TEST(FrameRoundTrip, RandomFramesInRandomPieces) {
  const uint64_t seed = testing::announced_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with SHARDLOOP_TEST_SEED)");
  std::mt19937_64 rng(seed);
  const auto uniform = [&](uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };
  struct Expected {
    FrameType type;
    uint16_t flags;
    uint64_t id;
    std::vector<std::pair<uint16_t, std::string>> fields;
  };
  const int rounds = 300 / testing::kSanitizerScale;
  for (int round = 0; round < rounds; ++round) {
    std::vector<Expected> frames(uniform(1, 5));
    std::string stream;
    for (Expected& e : frames) {
      e.type = static_cast<FrameType>(uniform(1, 4));
      e.flags = static_cast<uint16_t>(uniform(0, 0xffff));
      e.id = uniform(0, UINT64_MAX);
      e.fields.resize(uniform(0, 6));
      std::vector<Field> fields;
      for (auto& [type, data] : e.fields) {
        type = static_cast<uint16_t>(uniform(0, 0xffff));
        data.resize(uniform(0, 100));
        for (char& c : data) c = static_cast<char>(uniform(0, 255));
        fields.push_back({type, data});
      }
      ASSERT_EQ(append_frame(e.type, e.id, e.flags, fields, &stream), FrameError::kOk);
    }
    std::vector<size_t> pieces;
    for (size_t fed = 0; fed < stream.size(); fed += pieces.back()) {
      pieces.push_back(static_cast<size_t>(uniform(1, 50)));
    }
    FrameDecoder dec;
    size_t next = 0;
    testing::Transcript t;
    testing::feed(stream, pieces, &t, [&](std::string_view view) -> long {
      const DecodeResult r = dec.decode(view);
      if (r.status == DecodeStatus::kNeedMore) return 0;
      EXPECT_EQ(r.status, DecodeStatus::kFrame) << frame_error_message(r.error);
      if (r.status != DecodeStatus::kFrame || next >= frames.size()) return -1;
      const Expected& e = frames[next++];
      const Frame& f = dec.frame();
      EXPECT_EQ(f.header.type, e.type);
      EXPECT_EQ(f.header.flags, e.flags);
      EXPECT_EQ(f.header.request_id, e.id);
      EXPECT_EQ(f.fields.size(), e.fields.size());
      for (size_t i = 0; i < std::min(f.fields.size(), e.fields.size()); ++i) {
        EXPECT_EQ(f.fields[i].type, e.fields[i].first);
        EXPECT_EQ(f.fields[i].data, e.fields[i].second);
      }
      return static_cast<long>(r.consumed);
    });
    ASSERT_EQ(next, frames.size());
    ASSERT_EQ(t.back(), "end unconsumed=0");
    // The shared transcript (which also re-encodes every frame) agrees.
    const auto whole = testing::frame_transcript(stream, {}, {stream.size()});
    ASSERT_FALSE(testing::has_violation(whole)) << to_string(whole);
    ASSERT_EQ(to_string(whole), to_string(testing::frame_transcript(stream, {}, pieces)));
    ASSERT_FALSE(::testing::Test::HasFailure()) << "round " << round;
  }
}

}  // namespace
}  // namespace shardloop::rpc
