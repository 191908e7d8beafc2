// examples/http_server's service end to end: curl (when installed) gets answers, pipelined
// requests are answered in order, and malformed requests get their status and a closed
// connection, on both backends.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "examples/http/http_service.h"
#include "net/server.h"
#include "runtime/runtime.h"
#include "tests/backend_params.h"
#include "tests/net/test_support.h"

namespace shardloop {
namespace {

// Sends `request` on a fresh connection and returns everything received until the server
// closes (or 2 s pass), and whether the server closed.
std::pair<std::string, bool> send_and_receive(const net::Address& addr,
                                              const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, addr.sockaddr_ptr(), addr.length()) != 0) return {"connect failed", false};
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string got;
  char buf[4096];
  bool closed = false;
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;  // a timed recv is not restarted by the kernel
    if (n == 0) closed = true;
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return {got, closed};
}

class HttpServer : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam());
    ASSERT_TRUE(rt_.start().ok());
    auto server = net::Server::listen(rt_, testing::loopback_any(), examples::serve_http);
    ASSERT_TRUE(server.ok());
    server_ = std::move(*server);
  }
  void TearDown() override {
    server_.reset();
    rt_.stop();
  }
  Runtime rt_{{.workers = 2, .backend = GetParam()}};
  std::unique_ptr<net::Server> server_;
};

TEST_P(HttpServer, CurlGetsHelloAndStats) {
  if (std::system("command -v curl >/dev/null 2>&1") != 0) GTEST_SKIP() << "curl not installed";
  const std::string base = "http://127.0.0.1:" + std::to_string(server_->port());
  auto run = [](const std::string& cmd) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    char buf[4096];
    while (p != nullptr && std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
    const int rc = p != nullptr ? ::pclose(p) : -1;
    return std::make_pair(rc, out);
  };
  auto [rc, body] = run("curl -sS --max-time 5 " + base + "/");
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(body, "hello\n");
  auto [rc2, stats] = run("curl -sS --max-time 5 " + base + "/stats");
  EXPECT_EQ(rc2, 0);
  EXPECT_NE(stats.find("\"workers\":["), std::string::npos) << stats;
  auto [rc3, code] =
      run("curl -s -o /dev/null -w '%{http_code}' --max-time 5 " + base + "/missing");
  EXPECT_EQ(code, "404");
}

TEST_P(HttpServer, PipelinedRequestsAreAnsweredInOrder) {
  auto [got, closed] = send_and_receive(server_->address(),
                                        "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
                                        "GET /missing HTTP/1.1\r\nHost: a\r\n\r\n"
                                        "HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(closed) << "Connection: close must end the connection";
  const size_t a = got.find("HTTP/1.1 200 OK");
  const size_t b = got.find("HTTP/1.1 404 Not Found");
  const size_t c = got.find("HTTP/1.1 200 OK", a + 1);
  ASSERT_NE(a, std::string::npos) << got;
  ASSERT_NE(b, std::string::npos) << got;
  ASSERT_NE(c, std::string::npos) << got;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(got.substr(c).find("hello"), std::string::npos) << "HEAD must not send a body";
}

// Each malformed request gets its status and a closed connection, and nothing smuggled behind
// it is answered.
TEST_P(HttpServer, MalformedRequestsGetTheirStatusAndAClose) {
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
  struct Case {
    std::string request;
    std::string status;
  };
  const Case cases[] = {
      {"GET / HTTP/1.1\r\n\r\n", "400"},                                         // no Host
      {"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n", "400"},          // obs-fold
      {"GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", "400"},                        // bare CR
      {std::string("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 35), "400"},  // NUL
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", "400"},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", "400"},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       "400"},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(9000, 'x') + "\r\n\r\n", "431"},
      {"GET /" + std::string(9000, 'u') + " HTTP/1.1\r\nHost: a\r\n\r\n", "414"},
      {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505"},
  };
  for (const Case& c : cases) {
    auto [got, closed] = send_and_receive(server_->address(), c.request + smuggled);
    EXPECT_EQ(got.substr(0, 12), "HTTP/1.1 " + c.status)
        << ::testing::PrintToString(c.request.substr(0, 80));
    EXPECT_TRUE(closed) << c.status;
    EXPECT_EQ(got.find("HTTP/1.1", 1), std::string::npos)
        << "a request behind a rejected one was answered";
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, HttpServer, testing::kAllBackends, testing::backend_test_name);

}  // namespace
}  // namespace shardloop
