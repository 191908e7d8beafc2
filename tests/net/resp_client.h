// A blocking RESP2 test client: sends raw bytes or commands, reads whole replies (raw RESP, so
// tests compare exact bytes), and reports when the server closes. Timeouts through SO_RCVTIMEO;
// recv() is retried on EINTR.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/address.h"
#include "net/protocols/resp_writer.h"

namespace shardloop::testing {

// End offset of the complete reply starting at `pos`, or nullopt when more bytes are needed.
inline std::optional<size_t> resp_reply_end(std::string_view s, size_t pos = 0) {
  if (pos >= s.size()) return std::nullopt;
  const size_t eol = s.find("\r\n", pos);
  if (eol == std::string_view::npos) return std::nullopt;
  const char type = s[pos];
  if (type != '$' && type != '*') return eol + 2;
  const long long n = std::atoll(std::string(s.substr(pos + 1, eol - pos - 1)).c_str());
  if (n < 0) return eol + 2;
  if (type == '$') {
    const size_t end = eol + 2 + static_cast<size_t>(n) + 2;
    if (end > s.size()) return std::nullopt;
    return end;
  }
  size_t p = eol + 2;
  for (long long i = 0; i < n; ++i) {
    auto e = resp_reply_end(s, p);
    if (!e) return std::nullopt;
    p = *e;
  }
  return p;
}

// The RESP encoding of a bulk string, for expected replies.
inline std::string bulk(std::string_view s) {
  return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n";
}

class RespClient {
 public:
  explicit RespClient(const net::Address& address, int timeout_seconds = 5) {
    fd_ = ::socket(address.family(), SOCK_STREAM, 0);
    timeval tv{timeout_seconds, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (::connect(fd_, address.sockaddr_ptr(), address.length()) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RespClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RespClient(const RespClient&) = delete;
  RespClient& operator=(const RespClient&) = delete;

  bool connected() const { return fd_ >= 0; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Appends `args` as a multibulk command to `out` (for building pipelines).
  static void append(std::initializer_list<std::string_view> args, std::string* out) {
    std::vector<std::string_view> v(args);
    resp::append_command(v, out);
  }
  bool command(std::initializer_list<std::string_view> args) {
    std::string bytes;
    append(args, &bytes);
    return send(bytes);
  }
  // Sends `args` and returns the reply.
  std::string call(std::initializer_list<std::string_view> args) {
    if (!command(args)) return "<send failed>";
    return reply();
  }

  // The next complete reply, raw; "" on timeout or close.
  std::string reply() {
    for (;;) {
      if (auto end = resp_reply_end(buf_)) {
        std::string r = buf_.substr(0, *end);
        buf_.erase(0, *end);
        return r;
      }
      if (!fill()) return "";
    }
  }

  // Everything until the server closes (or the timeout); *closed tells which.
  std::string read_until_close(bool* closed) {
    while (fill()) {
    }
    *closed = closed_;
    return std::exchange(buf_, {});
  }

  int fd() const { return fd_; }

 private:
  bool fill() {
    char chunk[16 * 1024];
    for (;;) {
      ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;  // a timed recv is not restarted by the kernel
      if (n == 0) closed_ = true;
      if (n <= 0) return false;
      buf_.append(chunk, static_cast<size_t>(n));
      return true;
    }
  }

  int fd_ = -1;
  std::string buf_;
  bool closed_ = false;
};

}  // namespace shardloop::testing
