#include "net/protocols/http_parser.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "net/protocols/internal/ascii.h"

namespace shardloop::http {
namespace {

using protocols::internal::all_of_class;
using protocols::internal::equals_ignore_case;
using protocols::internal::has_class;
using protocols::internal::hex_value;
using protocols::internal::kFieldChar;
using protocols::internal::kHostChar;
using protocols::internal::kTargetChar;
using protocols::internal::kTokenChar;
using protocols::internal::trim_ows;

// Room on the request line beyond the target: method, two spaces, "HTTP/1.1". Methods longer
// than about 50 bytes do not exist; the point is only that the line cannot grow without bound.
constexpr size_t kRequestLineSlack = 64;
// Empty lines tolerated before a request line (RFC 9112 section 2.2 asks for at least one).
constexpr size_t kMaxEmptyLines = 4;

size_t saturating_add(size_t a, size_t b) {
  return a > std::numeric_limits<size_t>::max() - b ? std::numeric_limits<size_t>::max() : a + b;
}

// Calls fn(element) for each element of a comma-separated list, trimmed, skipping empty ones
// (RFC 9110 section 5.6.1: recipients ignore empty list elements).
template <typename Fn>
void for_each_list_element(std::string_view list, Fn fn) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view element = trim_ows(list.substr(0, comma));
    if (!element.empty()) fn(element);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

// absolute-form starts with a scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":".
bool has_scheme(std::string_view target) {
  const size_t colon = target.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  const char first = target[0];
  if (!((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z'))) return false;
  for (char c : target.substr(0, colon)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string_view> Request::header(std::string_view name) const {
  for (const Header& h : headers) {
    if (equals_ignore_case(h.name, name)) return h.value;
  }
  return std::nullopt;
}

void RequestParser::reset() {
  start_request();
  error_status_ = 0;
  error_reason_ = {};
}

void RequestParser::start_request() {
  state_ = State::kRequestLine;
  pos_ = 0;
  scan_ = 0;
  empty_lines_ = 0;
  section_start_ = 0;
  method_offset_ = method_length_ = target_offset_ = target_length_ = 0;
  version_minor_ = 1;
  header_slices_.clear();
  trailer_slices_.clear();
  has_content_length_ = false;
  content_length_ = 0;
  host_count_ = 0;
  te_present_ = false;
  te_last_chunked_ = false;
  te_chunked_count_ = 0;
  te_other_coding_ = false;
  connection_close_ = false;
  connection_keep_alive_ = false;
  expect_continue_ = false;
  body_offset_ = 0;
  chunk_remaining_ = 0;
  decoded_body_.clear();
  headers_.clear();
  trailers_.clear();
  request_ = Request{};
}

bool RequestParser::fail(int status, std::string_view reason) {
  state_ = State::kError;
  error_status_ = status;
  error_reason_ = reason;
  return false;
}

bool RequestParser::awaiting_body_after_continue() const {
  const bool in_body = state_ == State::kFixedBody || state_ == State::kChunkSize ||
                       state_ == State::kChunkData || state_ == State::kTrailers;
  return in_body && expect_continue_;
}

ParseResult RequestParser::parse(std::string_view input) {
  if (state_ == State::kComplete) start_request();
  ParseResult r = run(input);
  if (state_ == State::kError) {
    return {.status = ParseStatus::kError,
            .error_status = error_status_,
            .error_reason = error_reason_,
            .must_close = true};
  }
  return r;
}

bool RequestParser::next_line(std::string_view input, size_t section_start, size_t section_limit,
                              int limit_status, std::string_view limit_reason,
                              std::string_view* content, size_t* next) {
  const size_t from = std::max(scan_, pos_);
  const void* lf =
      from < input.size() ? std::memchr(input.data() + from, '\n', input.size() - from) : nullptr;
  if (lf == nullptr) {
    scan_ = input.size();
    // An unfinished line can only be judged by its length. A finished one is judged by the
    // same (larger) measure first, so the verdict does not depend on where reads split.
    if (input.size() - section_start > section_limit) fail(limit_status, limit_reason);
    return false;
  }
  const size_t n = static_cast<const char*>(lf) - input.data();
  if (n + 1 - section_start > section_limit) return fail(limit_status, limit_reason);
  std::string_view line = input.substr(pos_, n - pos_);
  if (line.empty() || line.back() != '\r') return fail(400, "line not terminated by CRLF");
  line.remove_suffix(1);
  if (std::memchr(line.data(), '\r', line.size()) != nullptr) return fail(400, "bare CR");
  *content = line;
  *next = n + 1;
  return true;
}

ParseResult RequestParser::run(std::string_view input) {
  std::string_view line;
  size_t next = 0;
  for (;;) {
    switch (state_) {
      case State::kRequestLine: {
        const size_t line_limit = saturating_add(limits_.max_uri_bytes, kRequestLineSlack);
        if (!next_line(input, pos_, line_limit, 414, "request line too long", &line, &next)) {
          return {};
        }
        if (line.empty()) {
          if (++empty_lines_ > kMaxEmptyLines) {
            fail(400, "too many empty lines before the request line");
            return {};
          }
        } else {
          if (!on_request_line(line, pos_)) return {};
          section_start_ = next;
          state_ = State::kHeaders;
        }
        pos_ = scan_ = next;
        break;
      }
      case State::kHeaders:
      case State::kTrailers: {
        const bool trailer = state_ == State::kTrailers;
        if (!next_line(input, section_start_, limits_.max_header_bytes, 431,
                       trailer ? "trailer section too large" : "header section too large", &line,
                       &next)) {
          return {};
        }
        const size_t line_offset = pos_;
        pos_ = scan_ = next;
        if (line.empty()) {
          if (trailer) return complete(input);
          if (!on_headers_done()) return {};
          if (state_ == State::kComplete) return complete(input);
        } else if (!on_field_line(line, line_offset, trailer)) {
          return {};
        }
        break;
      }
      case State::kFixedBody:
        if (input.size() - body_offset_ < content_length_) return {};
        pos_ = body_offset_ + content_length_;
        return complete(input);
      case State::kChunkSize:
        if (!next_line(input, pos_, limits_.max_chunk_line_bytes, 400, "chunk size line too long",
                       &line, &next)) {
          return {};
        }
        if (!on_chunk_size_line(line)) return {};
        pos_ = scan_ = next;
        if (state_ == State::kTrailers) section_start_ = pos_;
        break;
      case State::kChunkData: {
        // As subtractions: chunk_remaining_ may be large, input small.
        if (input.size() - pos_ < 2 || input.size() - pos_ - 2 < chunk_remaining_) return {};
        const size_t end = pos_ + chunk_remaining_;
        if (input[end] != '\r' || input[end + 1] != '\n') {
          fail(400, "chunk data not followed by CRLF");
          return {};
        }
        decoded_body_.append(input.data() + pos_, chunk_remaining_);
        pos_ = scan_ = end + 2;
        state_ = State::kChunkSize;
        break;
      }
      case State::kComplete:  // unreachable: parse() starts the next request first
      case State::kError:     // sticky: parse() reports it
        return {};
    }
  }
}

bool RequestParser::on_request_line(std::string_view line, size_t line_offset) {
  // request-line = method SP request-target SP HTTP-version, single spaces only.
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return fail(400, "malformed request line");
  const std::string_view method = line.substr(0, sp1);
  if (!all_of_class(method, kTokenChar)) return fail(400, "invalid method");
  const std::string_view rest = line.substr(sp1 + 1);
  const size_t sp2 = rest.find(' ');
  if (sp2 == std::string_view::npos) return fail(400, "malformed request line");
  const std::string_view target = rest.substr(0, sp2);
  const std::string_view version = rest.substr(sp2 + 1);

  if (target.empty()) return fail(400, "malformed request line");
  if (target.size() > limits_.max_uri_bytes) return fail(414, "URI too long");
  if (!all_of_class(target, kTargetChar)) return fail(400, "invalid request-target");

  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !digit(version[5]) ||
      version[6] != '.' || !digit(version[7])) {
    return fail(400, "malformed HTTP version");
  }
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) {
    return fail(505, "HTTP version not supported");
  }
  version_minor_ = version[7] - '0';

  // The four request-target forms (RFC 9112 section 3.2).
  if (method == "CONNECT") {
    if (target[0] == '/' || target.find(':') == std::string_view::npos) {
      return fail(400, "CONNECT needs an authority-form target");
    }
  } else if (target == "*") {
    if (method != "OPTIONS") return fail(400, "asterisk-form target is for OPTIONS only");
  } else if (target[0] != '/' && !has_scheme(target)) {
    return fail(400, "invalid request-target");
  }

  method_offset_ = line_offset;
  method_length_ = method.size();
  target_offset_ = line_offset + sp1 + 1;
  target_length_ = target.size();
  return true;
}

bool RequestParser::on_field_line(std::string_view line, size_t line_offset, bool trailer) {
  if (line[0] == ' ' || line[0] == '\t') {
    // obs-fold (RFC 9112 section 5.2), or whitespace before the first field name: either way a
    // recipient that unfolds and one that does not would see different fields.
    return fail(400, "obs-fold or leading whitespace in field line");
  }
  std::vector<FieldSlice>& slices = trailer ? trailer_slices_ : header_slices_;
  if (slices.size() >= limits_.max_header_count) {
    return fail(431, trailer ? "too many trailer fields" : "too many header fields");
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return fail(400, "field line without colon");
  const std::string_view name = line.substr(0, colon);
  if (name.empty()) return fail(400, "empty field name");
  if (name.back() == ' ' || name.back() == '\t') return fail(400, "whitespace before colon");
  if (!all_of_class(name, kTokenChar)) return fail(400, "invalid field name");
  const std::string_view raw = line.substr(colon + 1);
  for (char c : raw) {
    if (!has_class(c, kFieldChar)) {
      return fail(400, c == '\0' ? "NUL in field value" : "control character in field value");
    }
  }
  const std::string_view value = trim_ows(raw);
  const size_t value_offset =
      value.empty() ? line_offset + line.size() : value.data() - line.data() + line_offset;
  slices.push_back({.name_offset = line_offset,
                    .name_length = name.size(),
                    .value_offset = value_offset,
                    .value_length = value.size()});
  // Trailers are kept for the application but never change framing or connection handling.
  return trailer || on_header(name, value);
}

bool RequestParser::on_header(std::string_view name, std::string_view value) {
  if (equals_ignore_case(name, "content-length")) {
    // Even identical repeats are refused: some intermediaries take the first, some the last,
    // some the comma-joined list.
    if (has_content_length_) return fail(400, "duplicate Content-Length");
    if (value.empty()) return fail(400, "invalid Content-Length");
    uint64_t n = 0;
    for (char c : value) {
      if (c < '0' || c > '9') return fail(400, "invalid Content-Length");
      const uint64_t d = static_cast<uint64_t>(c - '0');
      // Saturate: a syntactically valid but huge length is "too large" (413), not malformed.
      n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
    }
    has_content_length_ = true;
    content_length_ = n;
  } else if (equals_ignore_case(name, "transfer-encoding")) {
    te_present_ = true;
    bool ok = true;
    for_each_list_element(value, [&](std::string_view coding) {
      if (equals_ignore_case(coding, "chunked")) {
        ++te_chunked_count_;
        te_last_chunked_ = true;
        return;
      }
      // Another coding, possibly with parameters ("gzip;q=1"): its name must be a token.
      const std::string_view coding_name = trim_ows(coding.substr(0, coding.find(';')));
      if (!all_of_class(coding_name, kTokenChar)) ok = false;
      te_other_coding_ = true;
      te_last_chunked_ = false;
    });
    if (!ok) return fail(400, "invalid Transfer-Encoding");
  } else if (equals_ignore_case(name, "host")) {
    if (++host_count_ > 1) return fail(400, "duplicate Host");
    for (char c : value) {
      if (!has_class(c, kHostChar)) return fail(400, "invalid Host");
    }
  } else if (equals_ignore_case(name, "connection")) {
    for_each_list_element(value, [&](std::string_view option) {
      if (equals_ignore_case(option, "close")) connection_close_ = true;
      if (equals_ignore_case(option, "keep-alive")) connection_keep_alive_ = true;
    });
  } else if (equals_ignore_case(name, "expect")) {
    if (equals_ignore_case(value, "100-continue")) expect_continue_ = true;
  }
  return true;
}

bool RequestParser::on_headers_done() {
  if (version_minor_ == 1 && host_count_ == 0) return fail(400, "missing Host");
  // RFC 9110 section 10.1.1: an HTTP/1.0 client cannot take part in 100-continue.
  if (version_minor_ == 0) expect_continue_ = false;
  if (te_present_) {
    if (has_content_length_) return fail(400, "Content-Length with Transfer-Encoding");
    if (version_minor_ == 0) return fail(400, "Transfer-Encoding in HTTP/1.0");
    if (!te_last_chunked_) return fail(400, "chunked is not the final transfer coding");
    if (te_chunked_count_ > 1) return fail(400, "chunked applied more than once");
    if (te_other_coding_) return fail(501, "unsupported transfer coding");
    state_ = State::kChunkSize;
    return true;
  }
  if (has_content_length_) {
    if (content_length_ > limits_.max_body_bytes) return fail(413, "body too large");
    body_offset_ = pos_;
    state_ = content_length_ > 0 ? State::kFixedBody : State::kComplete;
    return true;
  }
  body_offset_ = pos_;
  state_ = State::kComplete;
  return true;
}

bool RequestParser::on_chunk_size_line(std::string_view line) {
  // chunk = chunk-size [ chunk-ext ] CRLF; chunk-ext = *( BWS ";" BWS ext-name [ "=" ext-val ] ).
  size_t i = 0;
  uint64_t size = 0;
  const uint64_t room = limits_.max_body_bytes - decoded_body_.size();
  while (i < line.size() && hex_value(line[i]) >= 0) {
    size = size * 16 + static_cast<uint64_t>(hex_value(line[i]));
    // Checked per digit, so any number of digits cannot overflow.
    if (size > room) return fail(413, "body too large");
    ++i;
  }
  if (i == 0) return fail(400, "invalid chunk size");
  std::string_view ext = line.substr(i);
  if (!ext.empty()) {
    // Whitespace is allowed only before a ';' (BWS): "5 " alone is refused, since parsers
    // disagree on it. Extensions are tolerated and ignored, but may not hold control bytes
    // that a lenient parser elsewhere might take for a line end.
    while (!ext.empty() && (ext.front() == ' ' || ext.front() == '\t')) ext.remove_prefix(1);
    if (ext.empty() || ext.front() != ';') return fail(400, "invalid chunk size");
    for (char c : ext) {
      if (!has_class(c, kFieldChar)) return fail(400, "invalid chunk extension");
    }
  }
  chunk_remaining_ = size;
  state_ = size == 0 ? State::kTrailers : State::kChunkData;
  return true;
}

ParseResult RequestParser::complete(std::string_view input) {
  const auto make_fields = [&](const std::vector<FieldSlice>& slices, std::vector<Header>* out) {
    out->clear();
    out->reserve(slices.size());
    for (const FieldSlice& s : slices) {
      out->push_back({.name = input.substr(s.name_offset, s.name_length),
                      .value = input.substr(s.value_offset, s.value_length)});
    }
  };
  make_fields(header_slices_, &headers_);
  make_fields(trailer_slices_, &trailers_);

  request_.method = input.substr(method_offset_, method_length_);
  request_.target = input.substr(target_offset_, target_length_);
  request_.version_minor = version_minor_;
  request_.headers = absl::MakeConstSpan(headers_);
  request_.trailers = absl::MakeConstSpan(trailers_);
  request_.chunked = te_present_;
  if (te_present_) {
    request_.body = decoded_body_;
  } else if (has_content_length_) {
    request_.body = input.substr(body_offset_, content_length_);
  } else {
    request_.body = {};
  }
  request_.keep_alive = !connection_close_ && (version_minor_ == 1 || connection_keep_alive_);
  request_.expect_continue = expect_continue_;
  state_ = State::kComplete;
  return {.status = ParseStatus::kComplete, .consumed = pos_, .must_close = !request_.keep_alive};
}

}  // namespace shardloop::http
