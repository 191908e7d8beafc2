// Accepting under fd exhaustion: with the process's fd table filled up to RLIMIT_NOFILE, so
// that every accept fails with EMFILE, 200 clients wait in the backlog for 10 s. The server must
// back off (at most 20 accept attempts a second per worker, under 5% of a core), and serve again at
// once when fds free up.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

#include "bench/common/cpu_time.h"
#include "examples/echo/echo_service.h"
#include "net/server.h"
#include "runtime/runtime.h"
#include "tests/backend_params.h"
#include "tests/net/test_support.h"

namespace shardloop {
namespace {

class Emfile : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam()); }
};

// One request/response on a fresh blocking socket; true on a correct echo.
bool ping(const net::Address& addr) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  bool ok = ::connect(fd, addr.sockaddr_ptr(), addr.length()) == 0 && ::send(fd, "ping", 4, 0) == 4;
  char buf[4];
  size_t got = 0;
  while (ok && got < 4) {
    ssize_t n = ::recv(fd, buf + got, 4 - got, 0);
    if (n < 0 && errno == EINTR) continue;  // a timed recv is not restarted by the kernel
    if (n <= 0)
      ok = false;
    else
      got += static_cast<size_t>(n);
  }
  ::close(fd);
  return ok && std::string_view(buf, 4) == "ping";
}

TEST_P(Emfile, BacksOffWhileFdsAreExhaustedAndRecovers) {
  const int kClients = 200;
  const auto hold = std::chrono::seconds(10);
  Runtime rt({.workers = 2, .backend = GetParam()});
  ASSERT_TRUE(rt.start().ok());
  auto server = net::Server::listen(rt, testing::loopback_any(), examples::serve_echo);
  ASSERT_TRUE(server.ok());
  const net::Address addr = (*server)->address();
  ASSERT_TRUE(ping(addr));

  // Create the client sockets first (they need fds too), then fill every remaining fd slot up
  // to RLIMIT_NOFILE, so the server's next accept fails with EMFILE. (Filling the table, rather
  // than lowering the limit, also covers io_uring, whose accept reads the limit when armed.)
  std::vector<int> clients;
  for (int i = 0; i < kClients; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    clients.push_back(fd);
  }
  std::vector<int> filler;
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(devnull, 0);
  filler.push_back(devnull);
  for (;;) {
    int fd = ::dup(devnull);
    if (fd < 0) {
      ASSERT_EQ(errno, EMFILE) << "filling the fd table stopped early: " << strerror(errno);
      break;
    }
    filler.push_back(fd);
  }

  const uint64_t errors_before = (*server)->stats().accept_errors;
  const double cpu_before = bench::self_cpu_seconds();
  for (int fd : clients) {
    ASSERT_EQ(::connect(fd, addr.sockaddr_ptr(), addr.length()), 0) << strerror(errno);
  }
  std::this_thread::sleep_for(hold);
  const double cpu = bench::self_cpu_seconds() - cpu_before;
  const uint64_t attempts = (*server)->stats().accept_errors - errors_before;

  for (int fd : filler) ::close(fd);
  for (int fd : clients) ::close(fd);
  const auto recover_start = std::chrono::steady_clock::now();
  int ok = 0;
  for (int i = 0; i < 100; ++i) ok += ping(addr) ? 1 : 0;
  const double recovery =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - recover_start).count();

  const double seconds = std::chrono::duration<double>(hold).count();
  std::printf(
      "EMFILE for %.0f s: %llu failed accepts (%.1f/s per worker), %.3f s CPU (%.1f%% of a core); "
      "100 requests after recovery took %.3f s\n",
      seconds, static_cast<unsigned long long>(attempts), attempts / seconds / rt.size(), cpu,
      100 * cpu / seconds, recovery);
  EXPECT_GT(attempts, 0u) << "the limit did not make accepts fail";
  EXPECT_LE(attempts / seconds / rt.size(), 20.0);
  EXPECT_LT(cpu / seconds, 0.05);
  EXPECT_EQ(ok, 100);
  EXPECT_LT(recovery, 1.0);
  rt.drain(absl::Seconds(5));
}

INSTANTIATE_TEST_SUITE_P(Backends, Emfile, testing::kAllBackends, testing::backend_test_name);

}  // namespace
}  // namespace shardloop
