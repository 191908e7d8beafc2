// loadgen --mode http: `GET / HTTP/1.1` on a keep-alive connection, pipelined up to --pipeline.
// An answer is delimited by its Content-Length (chunked answers are not supported: the stream
// is reported broken) and is right when its status is 200; interim 1xx answers are skipped.
#include <cstdint>
#include <string>

#include "bench/loadgen/client_protocol.h"

namespace shardloop::bench {
namespace {

// Longest answer head accepted before the stream is called broken.
constexpr size_t kMaxHead = 64 * 1024;

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;  // `prefix` is lower case
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool parse_u64(std::string_view s, uint64_t* v) {
  if (s.empty() || s.size() > 18) return false;
  *v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    *v = *v * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}

class HttpProtocol final : public ClientProtocol {
 public:
  void append_request(uint64_t, std::string* out) override {
    out->append("GET / HTTP/1.1\r\nHost: loadgen\r\n\r\n");
  }

  ParseOutcome parse(std::string_view in, absl::FunctionRef<void(uint64_t)> answered) override {
    ParseOutcome r;
    for (;;) {
      const std::string_view rest = in.substr(r.consumed);
      const size_t head_end = rest.find("\r\n\r\n");
      if (head_end == std::string_view::npos) {
        if (rest.size() > kMaxHead) r.broken = "http: an answer head above 64 KiB";
        return r;
      }
      const std::string_view head = rest.substr(0, head_end + 2);  // lines, each ending in CRLF
      int status = 0;
      uint64_t length = 0;
      if (!parse_head(head, &status, &length, &r.broken)) return r;
      const size_t total = head_end + 4 + length;
      if (rest.size() < total) return r;  // the body is still coming
      r.consumed += total;
      if (status >= 100 && status < 200) continue;  // interim answer (100 Continue)
      if (status != 200) ++r.mismatches;
      answered(next_++);
    }
  }

 private:
  // Reads the status and the body length from an answer head; false (and `broken`) when it
  // cannot be delimited.
  static bool parse_head(std::string_view head, int* status, uint64_t* length,
                         std::string* broken) {
    size_t eol = head.find("\r\n");
    const std::string_view status_line = head.substr(0, eol);
    if ((status_line.substr(0, 9) != "HTTP/1.1 " && status_line.substr(0, 9) != "HTTP/1.0 ") ||
        status_line.size() < 12) {
      *broken = "http: not an HTTP/1.x answer: " + std::string(status_line.substr(0, 40));
      return false;
    }
    uint64_t code = 0;
    if (!parse_u64(status_line.substr(9, 3), &code)) {
      *broken = "http: bad status line: " + std::string(status_line.substr(0, 40));
      return false;
    }
    *status = static_cast<int>(code);
    bool has_length = false;
    for (size_t pos = eol + 2; pos < head.size(); pos = eol + 2) {
      eol = head.find("\r\n", pos);
      const std::string_view line = head.substr(pos, eol - pos);
      if (starts_with_nocase(line, "content-length:")) {
        if (!parse_u64(trim(line.substr(15)), length)) {
          *broken = "http: bad Content-Length";
          return false;
        }
        has_length = true;
      } else if (starts_with_nocase(line, "transfer-encoding:")) {
        *broken = "http: Transfer-Encoding answers are not supported";
        return false;
      }
    }
    const bool bodiless = (code >= 100 && code < 200) || code == 204 || code == 304;
    if (!has_length && !bodiless) {
      *broken = "http: an answer without Content-Length";
      return false;
    }
    if (bodiless) *length = 0;
    return true;
  }

  uint64_t next_ = 0;  // HTTP/1.1 answers come in request order
};

}  // namespace

absl::StatusOr<ProtocolFactory> http_protocol(const ProtocolOptions&) {
  return ProtocolFactory([] { return std::make_unique<HttpProtocol>(); });
}

}  // namespace shardloop::bench
