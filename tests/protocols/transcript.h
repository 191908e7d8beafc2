// Transcripts: run a protocol parser over a byte stream delivered in pieces, the way a connection
// would, and record every outcome as a line of text. Two deliveries of the same bytes must give
// the same transcript; the unit tests (byte by byte, split at every offset, random splits) and
// the fuzz targets (splits derived from the fuzz input) both compare against the one-piece run.
//
// Each parse() call sees the unconsumed bytes copied into a fresh heap block of exactly their
// size, so AddressSanitizer reports any read past the input, and a parser that kept a pointer
// into an earlier call's input (instead of an offset) reads freed memory. Broken invariants are
// recorded as lines starting with "VIOLATION".
//
// Thread-safety: plain functions; each call uses its own parser.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/protocols/frame_codec.h"
#include "net/protocols/http_parser.h"
#include "net/protocols/resp_parser.h"

namespace shardloop::testing {

using Transcript = std::vector<std::string>;

// Printable ASCII as is, anything else as \xHH, so transcripts compare and print well.
inline std::string escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '\\') {
      out.push_back(c);
    } else {
      out += "\\x";
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

inline bool inside(std::string_view part, std::string_view whole) {
  if (part.empty()) return true;
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

inline bool has_violation(const Transcript& t) {
  for (const std::string& line : t) {
    if (line.rfind("VIOLATION", 0) == 0) return true;
  }
  return false;
}

inline std::string to_string(const Transcript& t) {
  std::string out;
  for (const std::string& line : t) out += line + "\n";
  return out;
}

// Piece sizes 1, 1, 1, ...: byte by byte.
inline std::vector<size_t> byte_by_byte(size_t size) { return std::vector<size_t>(size, 1); }

// Piece sizes derived from the bytes themselves (FNV-1a, then xorshift): mostly small pieces,
// sometimes larger ones, different for every input.
inline std::vector<size_t> pieces_from_bytes(std::string_view input, uint64_t salt = 0) {
  uint64_t h = 0xcbf29ce484222325ull ^ salt;
  for (char c : input) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  std::vector<size_t> sizes;
  size_t total = 0;
  while (total < input.size()) {
    h ^= h << 13;
    h ^= h >> 7;
    h ^= h << 17;
    const size_t span = (h >> 60) < 4 ? 64 : 8;
    const size_t n = 1 + (h >> 8) % span;
    sizes.push_back(n);
    total += n;
  }
  return sizes;
}

// Feeds `input` in pieces of the given sizes (the last one may be cut short; bytes left over
// go in one final piece) and calls step(view) on the unconsumed bytes after every piece until
// it asks for more. step returns the bytes it consumed, 0 for "need more", or -1 to stop.
template <typename Step>
void feed(std::string_view input, const std::vector<size_t>& piece_sizes, Transcript* out,
          Step step) {
  size_t fed = 0;
  size_t consumed = 0;
  size_t piece = 0;
  while (fed < input.size()) {
    size_t n = piece < piece_sizes.size() ? piece_sizes[piece++] : input.size() - fed;
    if (n == 0) n = 1;
    fed += std::min(n, input.size() - fed);
    for (;;) {
      const size_t size = fed - consumed;
      std::unique_ptr<char[]> copy(new char[size]);
      if (size > 0) std::memcpy(copy.get(), input.data() + consumed, size);
      const long r = step(std::string_view(copy.get(), size));
      if (r < 0) return;
      if (r == 0) break;
      if (static_cast<size_t>(r) > size) {
        out->push_back("VIOLATION consumed more than the input");
        return;
      }
      consumed += static_cast<size_t>(r);
    }
  }
  out->push_back("end unconsumed=" + std::to_string(input.size() - consumed));
}

inline Transcript http_transcript(std::string_view input, const http::Limits& limits,
                                  const std::vector<size_t>& piece_sizes) {
  Transcript t;
  http::RequestParser parser(limits);
  feed(input, piece_sizes, &t, [&](std::string_view view) -> long {
    const http::ParseResult r = parser.parse(view);
    if (r.status == http::ParseStatus::kNeedMore) {
      if (r.consumed != 0) t.push_back("VIOLATION need-more with consumed bytes");
      return 0;
    }
    if (r.status == http::ParseStatus::kError) {
      const int s = r.error_status;
      if (!r.must_close) t.push_back("VIOLATION error without must_close");
      if (s != 400 && s != 413 && s != 414 && s != 431 && s != 501 && s != 505) {
        t.push_back("VIOLATION unexpected status");
      }
      t.push_back("error " + std::to_string(s) + " " + std::string(r.error_reason));
      return -1;
    }
    const http::Request& q = parser.request();
    if (r.consumed == 0 || r.consumed > view.size()) t.push_back("VIOLATION consumed");
    const std::string_view req = view.substr(0, r.consumed);
    std::string line =
        "request consumed=" + std::to_string(r.consumed) + " " + escape(q.method) + " " +
        escape(q.target) + " 1." + std::to_string(q.version_minor) +
        " keep_alive=" + std::to_string(q.keep_alive) + " close=" + std::to_string(r.must_close) +
        " chunked=" + std::to_string(q.chunked) + " expect=" + std::to_string(q.expect_continue) +
        " host=" + escape(q.header("host").value_or("(none)")) + " headers:";
    if (!inside(q.method, req) || !inside(q.target, req)) t.push_back("VIOLATION line view");
    for (const http::Header& h : q.headers) {
      if (!inside(h.name, req) || !inside(h.value, req)) t.push_back("VIOLATION header view");
      line += " [" + escape(h.name) + ": " + escape(h.value) + "]";
    }
    line += " trailers:";
    for (const http::Header& h : q.trailers) {
      if (!inside(h.name, req) || !inside(h.value, req)) t.push_back("VIOLATION trailer view");
      line += " [" + escape(h.name) + ": " + escape(h.value) + "]";
    }
    if (!q.chunked && !inside(q.body, req)) t.push_back("VIOLATION body view");
    if (q.body.size() > parser.limits().max_body_bytes) t.push_back("VIOLATION body limit");
    if (r.must_close == q.keep_alive) t.push_back("VIOLATION must_close vs keep_alive");
    line += " body=" + escape(q.body);
    t.push_back(std::move(line));
    return static_cast<long>(r.consumed);
  });
  return t;
}

inline Transcript resp_transcript(std::string_view input, const resp::Limits& limits,
                                  const std::vector<size_t>& piece_sizes) {
  Transcript t;
  resp::CommandParser parser(limits);
  feed(input, piece_sizes, &t, [&](std::string_view view) -> long {
    const resp::ParseResult r = parser.parse(view);
    if (r.status == resp::ParseStatus::kNeedMore) {
      if (r.consumed != 0) t.push_back("VIOLATION need-more with consumed bytes");
      return 0;
    }
    if (r.status == resp::ParseStatus::kError) {
      if (r.error.rfind("Protocol error: ", 0) != 0) t.push_back("VIOLATION error text");
      t.push_back("error " + escape(r.error));
      return -1;
    }
    if (r.consumed == 0 || r.consumed > view.size()) t.push_back("VIOLATION consumed");
    std::string line = "command consumed=" + std::to_string(r.consumed) +
                       " inline=" + std::to_string(parser.last_was_inline()) + " args:";
    for (std::string_view a : parser.args()) {
      if (!parser.last_was_inline() && !inside(a, view.substr(0, r.consumed))) {
        t.push_back("VIOLATION arg view");
      }
      if (a.size() > r.consumed) t.push_back("VIOLATION arg size");
      line += " [" + escape(a) + "]";
    }
    t.push_back(std::move(line));
    return static_cast<long>(r.consumed);
  });
  return t;
}

inline Transcript frame_transcript(std::string_view input, const rpc::FrameLimits& limits,
                                   const std::vector<size_t>& piece_sizes) {
  Transcript t;
  rpc::FrameDecoder decoder(limits);
  feed(input, piece_sizes, &t, [&](std::string_view view) -> long {
    const rpc::DecodeResult r = decoder.decode(view);
    if (r.status == rpc::DecodeStatus::kNeedMore) {
      if (r.need <= view.size()) t.push_back("VIOLATION need-more without needing more");
      return 0;
    }
    if (r.status == rpc::DecodeStatus::kError) {
      t.push_back("error " + std::string(rpc::frame_error_message(r.error)));
      return -1;
    }
    const rpc::Frame& f = decoder.frame();
    if (r.consumed < rpc::kFrameHeaderSize || r.consumed > view.size() ||
        r.consumed != f.header.total_length || f.fields.size() != f.header.field_count) {
      t.push_back("VIOLATION frame size");
    }
    std::string line = "frame consumed=" + std::to_string(r.consumed) +
                       " type=" + std::to_string(static_cast<int>(f.header.type)) +
                       " flags=" + std::to_string(f.header.flags) +
                       " id=" + std::to_string(f.header.request_id) + " fields:";
    for (const rpc::Field& field : f.fields) {
      if (!inside(field.data, view.substr(0, r.consumed))) t.push_back("VIOLATION field view");
      line += " [" + std::to_string(field.type) + ": " + escape(field.data) + "]";
    }
    // Decoding then encoding gives back the same bytes: the format has one spelling per frame.
    std::string again;
    if (rpc::append_frame(f.header.type, f.header.request_id, f.header.flags, f.fields, &again,
                          limits) != rpc::FrameError::kOk ||
        again != view.substr(0, r.consumed)) {
      t.push_back("VIOLATION re-encoding differs");
    }
    t.push_back(std::move(line));
    return static_cast<long>(r.consumed);
  });
  return t;
}

}  // namespace shardloop::testing
