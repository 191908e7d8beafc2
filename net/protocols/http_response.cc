#include "net/protocols/http_response.h"

#include <charconv>
#include <string>

#include "net/protocols/internal/ascii.h"

namespace shardloop::http {
namespace {

using protocols::internal::all_of_class;
using protocols::internal::equals_ignore_case;
using protocols::internal::has_class;
using protocols::internal::kFieldChar;
using protocols::internal::kTokenChar;

// RFC 9110 section 6.4.1: no content in 1xx, 204 and 304 responses.
bool status_allows_body(int status) { return !(status < 200 || status == 204 || status == 304); }

bool safe_text(std::string_view s) {
  for (char c : s) {
    if (!has_class(c, kFieldChar)) return false;
  }
  return true;
}

void append_number(uint64_t n, std::string* out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), n);
  out->append(buf, r.ptr);
}

}  // namespace

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

bool append_response(const Response& r, std::string* out) {
  if (r.status < 100 || r.status > 999 || !safe_text(r.reason)) return false;
  const bool body_allowed = status_allows_body(r.status);
  if (!body_allowed && !r.body.empty()) return false;
  size_t size = 64 + r.reason.size() + r.body.size();
  for (const Header& h : r.headers) {
    if (!all_of_class(h.name, kTokenChar) || !safe_text(h.value) ||
        equals_ignore_case(h.name, "content-length")) {
      return false;
    }
    size += h.name.size() + h.value.size() + 4;
  }
  out->reserve(out->size() + size);

  out->append("HTTP/1.1 ");
  append_number(static_cast<uint64_t>(r.status), out);
  out->push_back(' ');
  out->append(r.reason.empty() ? reason_phrase(r.status) : r.reason);
  out->append("\r\n");
  for (const Header& h : r.headers) {
    out->append(h.name);
    out->append(": ");
    out->append(h.value);
    out->append("\r\n");
  }
  if (body_allowed) {
    out->append("Content-Length: ");
    append_number(r.body.size(), out);
    out->append("\r\n");
  }
  if (r.close) out->append("Connection: close\r\n");
  out->append("\r\n");
  if (!r.head) out->append(r.body);
  return true;
}

void append_error_response(int status, std::string* out) {
  std::string body;
  if (status_allows_body(status)) {
    body = reason_phrase(status);
    body.push_back('\n');
  }
  // Cannot fail: the phrase and body are ours, and no header is passed.
  append_response({.status = status, .body = body, .close = true}, out);
}

}  // namespace shardloop::http
