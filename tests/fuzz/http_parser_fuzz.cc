// libFuzzer target for the HTTP/1.1 request parser and response writer
// (net/protocols/http_parser.h, http_response.h).
//
// For every input, with the default limits and with small ones (so that 413, 414 and 431 are
// reachable with short inputs): no crash, no read past the input (each parse() sees an
// exact-size heap copy, ASan), the same transcript whether the bytes arrive in one piece, in
// pieces derived from the input or byte by byte, and the transcript invariants (consumed within
// the input, views within the request, must_close on every rejection and when keep-alive is
// off, bodies within the limit). Then the response writer: echoing every accepted request's
// fields and body in a response must succeed and give exactly one well-formed head, so no field
// the parser accepts can split a response. Run with tests/fuzz/run_fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "net/protocols/http_parser.h"
#include "net/protocols/http_response.h"
#include "net/protocols/internal/ascii.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace shardloop;

[[noreturn]] void die(const char* what, std::string_view out) {
  std::fprintf(stderr, "response writer check failed: %s\n%s\n", what,
               testing::escape(out).c_str());
  std::abort();
}

void check_echo_response(std::string_view input) {
  http::RequestParser parser;
  std::vector<http::Header> fields;
  std::string out;
  for (;;) {
    const http::ParseResult r = parser.parse(input);
    if (r.status != http::ParseStatus::kComplete) return;
    const http::Request& q = parser.request();
    fields.clear();
    for (const http::Header& h : q.headers) {
      if (!protocols::internal::equals_ignore_case(h.name, "content-length")) fields.push_back(h);
    }
    out.clear();
    const http::Response response = {
        .status = 200, .headers = fields, .body = q.body, .close = r.must_close};
    if (!http::append_response(response, &out)) die("refused fields the parser accepted", out);
    const size_t end = out.find("\r\n\r\n");
    if (end == std::string::npos || out.substr(end + 4) != q.body) die("head/body split", out);
    const std::string_view head = std::string_view(out).substr(0, end + 2);
    size_t lines = 0;
    for (size_t i = 0; i < head.size(); ++i) {
      const bool crlf = head[i] == '\r' && i + 1 < head.size() && head[i + 1] == '\n';
      if (head[i] == '\r' && !crlf) die("bare CR in the head", out);
      if (head[i] == '\n' && (i == 0 || head[i - 1] != '\r')) die("bare LF in the head", out);
      if (crlf) ++lines;
    }
    if (lines != 1 + fields.size() + 1 + (r.must_close ? 1 : 0)) die("line count", out);
    input.remove_prefix(r.consumed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  http::Limits small;
  small.max_uri_bytes = 24;
  small.max_header_bytes = 96;
  small.max_header_count = 4;
  small.max_body_bytes = 32;
  small.max_chunk_line_bytes = 16;
  for (const http::Limits& limits : {http::Limits{}, small}) {
    fuzz::check_delivery(input, limits, testing::http_transcript);
  }
  check_echo_response(input);
  return 0;
}
