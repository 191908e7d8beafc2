// HTTP/1.1 response writer: status line, header fields and body appended to an output buffer,
// with the framing (Content-Length, Connection: close) derived from the response instead of
// left to each handler, and header values checked so that no handler input can split a
// response in two.
//
//   std::string out;
//   http::append_response({.status = 200, .headers = hdrs, .body = "hello\n"}, &out);
//   http::append_error_response(431, &out);   // for a parser rejection; then close
//
// Thread-safety: pure functions apart from their output buffer.
#pragma once

#include <string>
#include <string_view>

#include "absl/types/span.h"
#include "net/protocols/http_parser.h"

namespace shardloop::http {

struct Response {
  int status = 200;              // 100..999
  std::string_view reason = {};  // empty: the standard phrase for `status`
  // Extra fields, written in order. Content-Length is added by the writer (do not pass it);
  // so is "Connection: close" when `close` is set.
  absl::Span<const Header> headers = {};
  std::string_view body = {};
  bool close = false;  // the connection closes after this response
  // Answering a HEAD request: Content-Length announces body.size(), the body is not written.
  bool head = false;
};

// The standard reason phrase ("Not Found"), or "Unknown" for codes this writer does not know.
std::string_view reason_phrase(int status);

// Appends the response to *out. Returns false and appends nothing when the response cannot be
// written safely: a status outside 100..999, a reason or value with CR, LF or NUL, a field name
// that is not a token, a Content-Length among `headers`, or a body with a status that forbids
// one (1xx, 204, 304).
bool append_response(const Response& response, std::string* out);

// Appends a minimal response for a parser rejection: the status, a one-line plain-text body and
// "Connection: close". Every rejection must close the connection after it (see http_parser.h).
void append_error_response(int status, std::string* out);

}  // namespace shardloop::http
