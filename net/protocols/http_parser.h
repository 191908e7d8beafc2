// Strict, incremental HTTP/1.1 request parser (RFC 9112) for servers: request line, header
// fields, Content-Length and chunked request bodies, keep-alive and pipelining. The method,
// target, header names and values, and a Content-Length body are zero-copy views into the
// caller's buffer; a chunked body is decoded into storage the parser owns.
//
// Strict means that anything two HTTP implementations could read differently is refused, since
// that difference is what request smuggling exploits. Rejections, with the status to answer:
//   400  malformed request line; method or header name not a token; whitespace before a colon;
//        obs-fold (a line starting with SP/HTAB); bare CR; bare LF line ends; NUL or another
//        control byte in a field value; missing, repeated or invalid Host in HTTP/1.1;
//        repeated or non-numeric Content-Length; Content-Length with Transfer-Encoding;
//        Transfer-Encoding in HTTP/1.0; chunked not the final (or applied twice) transfer
//        coding; malformed chunk framing.
//   413  a body (declared, or decoded so far) over Limits::max_body_bytes.
//   414  a request-target over Limits::max_uri_bytes (or a request line that long).
//   431  header (or trailer) section over Limits::max_header_bytes, or too many fields.
//   501  a transfer coding other than chunked (e.g. "gzip, chunked").
//   505  an HTTP version other than 1.0 and 1.1.
// Every rejection reports must_close: the server answers with the status and closes the
// connection, because after a framing error nothing that follows can be trusted to be the start
// of a request — keeping the connection open is how a request gets smuggled behind another.
//
// Connection semantics: HTTP/1.1 is keep-alive unless "Connection: close"; HTTP/1.0 closes
// unless "Connection: keep-alive". A completed request reports must_close when the connection
// must end after the response.
//
// Thread-safety: a RequestParser is owned by one connection; use from one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"

namespace shardloop::http {

struct Limits {
  // Longest request-target; longer ones get 414. The request line may be this plus 64 bytes
  // (method, version, separators); a longer line is refused with 414 before it ends.
  size_t max_uri_bytes = 8 * 1024;
  // Size of the header section (the lines after the request line, the empty line included);
  // the same limit applies separately to a chunked body's trailer section. Over it: 431.
  size_t max_header_bytes = 8 * 1024;
  // Header fields (and, separately, trailer fields) per request. Over it: 431.
  size_t max_header_count = 100;
  // Largest body, Content-Length or decoded chunked. Over it: 413. (nginx's default is 1 MiB.)
  uint64_t max_body_bytes = 1024 * 1024;
  // Longest chunk-size line, extensions included. Over it: 400.
  size_t max_chunk_line_bytes = 1024;
};

struct Header {
  std::string_view name = {};   // as received; compare case-insensitively
  std::string_view value = {};  // without leading and trailing whitespace
};

// A complete request. Views into the parser's input and into the parser, valid until the next
// parse() or reset() (and while the input bytes stay where they were).
struct Request {
  std::string_view method = {};  // case-sensitive token: "GET", "POST", ...
  std::string_view target = {};  // request-target as sent: "/path?q", "*", "http://h/p", "h:443"
  int version_minor = 1;         // HTTP/1.<version_minor>, 0 or 1
  absl::Span<const Header> headers = {};   // in order, repeats kept
  absl::Span<const Header> trailers = {};  // chunked bodies only
  std::string_view body = {};              // decoded
  bool chunked = false;
  bool keep_alive = true;
  bool expect_continue = false;  // "Expect: 100-continue"

  // The first header named `name` (case-insensitive), if any.
  std::optional<std::string_view> header(std::string_view name) const;
};

enum class ParseStatus { kNeedMore, kComplete, kError };

struct ParseResult {
  ParseStatus status = ParseStatus::kNeedMore;
  // kComplete: bytes of this request, body framing included; the next request starts there.
  size_t consumed = 0;
  // kError: the status to answer with (400, 413, 414, 431, 501, 505) and a static reason.
  int error_status = 0;
  std::string_view error_reason = {};
  // kError always; kComplete when the connection must close after the response.
  bool must_close = false;
};

// Incremental request parser for one connection.
//
//   for (;;) {
//     ParseResult r = parser.parse(buffered);   // every unconsumed byte, from the request start
//     if (r.status == ParseStatus::kNeedMore) break;       // read more, then call again
//     if (r.status == ParseStatus::kError) { answer(r.error_status); close; }
//     respond(parser.request());                // views valid until the next parse()
//     buffered.remove_prefix(r.consumed);       // pipelined requests follow
//     if (r.must_close) close after the response;
//   }
//
// Contract: after kNeedMore, the next call passes the same bytes again (they may have moved in
// memory) plus whatever arrived; the parser resumes where it stopped, so a request fed in N
// pieces costs O(size) in total. After kComplete, the next call starts at the next request.
// Errors are sticky until reset(). The verdict depends only on the bytes, never on how they
// were split across calls.
//
// Up to 4 empty lines before a request line are skipped (RFC 9112 section 2.2: some clients
// send a CRLF after a POST body); lines must end in CRLF.
class RequestParser {
 public:
  explicit RequestParser(const Limits& limits = {}) : limits_(limits) {}

  ParseResult parse(std::string_view input);
  const Request& request() const { return request_; }

  // True while the head of a request with "Expect: 100-continue" has been parsed and its body
  // is still incomplete: the moment to send "HTTP/1.1 100 Continue".
  bool awaiting_body_after_continue() const;

  // Starts over at a request boundary, forgetting any partial request or error.
  void reset();

  const Limits& limits() const { return limits_; }

 private:
  enum class State {
    kRequestLine,
    kHeaders,
    kFixedBody,
    kChunkSize,
    kChunkData,
    kTrailers,
    kComplete,
    kError,
  };
  // A header or trailer field as offsets into the input: the input may move between calls.
  struct FieldSlice {
    size_t name_offset;
    size_t name_length;
    size_t value_offset;
    size_t value_length;
  };

  ParseResult run(std::string_view input);
  // The next complete line [pos_, end-of-line) into *content (CR LF stripped) and *next (the
  // offset after the LF). Returns false when more input is needed or on error (state_ tells).
  bool next_line(std::string_view input, size_t section_start, size_t section_limit,
                 int limit_status, std::string_view limit_reason, std::string_view* content,
                 size_t* next);
  bool on_request_line(std::string_view line, size_t line_offset);
  bool on_field_line(std::string_view line, size_t line_offset, bool trailer);
  bool on_header(std::string_view name, std::string_view value);
  bool on_headers_done();
  bool on_chunk_size_line(std::string_view line);
  ParseResult complete(std::string_view input);
  bool fail(int status, std::string_view reason);
  void start_request();

  Limits limits_;
  State state_ = State::kRequestLine;
  size_t pos_ = 0;   // first byte not yet parsed, as an offset from the request start
  size_t scan_ = 0;  // how far the current line was searched for its LF
  size_t empty_lines_ = 0;
  size_t section_start_ = 0;  // where the header (or trailer) section began

  // Request line, as offsets.
  size_t method_offset_ = 0, method_length_ = 0;
  size_t target_offset_ = 0, target_length_ = 0;
  int version_minor_ = 1;

  std::vector<FieldSlice> header_slices_;
  std::vector<FieldSlice> trailer_slices_;

  // What the headers said, gathered line by line.
  bool has_content_length_ = false;
  uint64_t content_length_ = 0;
  size_t host_count_ = 0;
  bool te_present_ = false;
  bool te_last_chunked_ = false;
  int te_chunked_count_ = 0;
  bool te_other_coding_ = false;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  bool expect_continue_ = false;

  // Body.
  size_t body_offset_ = 0;
  uint64_t chunk_remaining_ = 0;
  std::string decoded_body_;

  int error_status_ = 0;
  std::string_view error_reason_;

  std::vector<Header> headers_;
  std::vector<Header> trailers_;
  Request request_;
};

}  // namespace shardloop::http
