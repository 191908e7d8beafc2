// examples/http_server's service under wrk (when installed): `wrk -t1 -c50 -d1s` must see
// requests completed, no socket errors (connect, read, write, timeout) and no non-2xx/3xx
// answers, on both backends.
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "examples/http/http_service.h"
#include "net/server.h"
#include "runtime/runtime.h"
#include "tests/backend_params.h"
#include "tests/net/subprocess.h"
#include "tests/net/test_support.h"

namespace shardloop {
namespace {

class WrkHttp : public ::testing::TestWithParam<Backend> {};

TEST_P(WrkHttp, FiftyConnectionsForOneSecondWithoutErrors) {
  SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam());
  if (std::system("command -v wrk >/dev/null 2>&1") != 0) GTEST_SKIP() << "wrk not installed";
  Runtime rt({.workers = 2, .backend = GetParam()});
  ASSERT_TRUE(rt.start().ok());
  auto server = net::Server::listen(rt, testing::loopback_any(), examples::serve_http);
  ASSERT_TRUE(server.ok());
  const std::string url = "http://127.0.0.1:" + std::to_string((*server)->port()) + "/";

  // wrk times its run and its per-request timeouts with the wall clock (gettimeofday). A
  // clock step during the run (an NTP sync on a freshly booted machine) makes it count every
  // request in flight as timed out and misreport the run's length: a run whose reported length
  // disagrees with the monotonic clock measured nothing, so it is repeated (up to 3 runs).
  testing::ProcessResult r;
  uint64_t requests = 0;
  for (int attempt = 1;; ++attempt) {
    const auto started = std::chrono::steady_clock::now();
    r = testing::run_process({"wrk", "-t1", "-c50", "-d1s", url}, std::chrono::seconds(20));
    const double steady_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ASSERT_FALSE(r.timed_out) << r.output;
    ASSERT_EQ(r.exit_code, 0) << r.output;
    // "  12345 requests in 1.00s, ..."
    const size_t at = r.output.find(" requests in ");
    ASSERT_NE(at, std::string::npos) << r.output;
    size_t begin = at;
    while (begin > 0 && r.output[begin - 1] >= '0' && r.output[begin - 1] <= '9') --begin;
    ASSERT_TRUE(absl::SimpleAtoi(absl::string_view(r.output.data() + begin, at - begin), &requests))
        << r.output;
    // wrk prints the length as "1.00s", "2.00m" or "1.00h".
    size_t unit_at = at + std::strlen(" requests in ");
    const size_t length_at = unit_at;
    while (unit_at < r.output.size() &&
           (std::isdigit(r.output[unit_at]) || r.output[unit_at] == '.')) {
      ++unit_at;
    }
    double wrk_s = 0;
    ASSERT_TRUE(unit_at < r.output.size() &&
                absl::SimpleAtod(
                    absl::string_view(r.output.data() + length_at, unit_at - length_at), &wrk_s))
        << r.output;
    wrk_s *= r.output[unit_at] == 'h' ? 3600 : r.output[unit_at] == 'm' ? 60 : 1;
    // wrk's own length is at most the process's; more than that, or far less, is a clock step.
    if (wrk_s <= steady_s + 0.25 && wrk_s >= 0.5) break;
    ASSERT_LT(attempt, 3) << "the wall clock stepped in 3 runs in a row; last:\n" << r.output;
    std::printf("wrk reported %.2f s for a run of %.2f s (the wall clock stepped); again\n", wrk_s,
                steady_s);
  }
  server->reset();
  rt.stop();

  // wrk prints these lines only when something went wrong.
  EXPECT_EQ(r.output.find("Socket errors"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Non-2xx or 3xx responses"), std::string::npos) << r.output;
  EXPECT_GT(requests, 0u) << r.output;
}

INSTANTIATE_TEST_SUITE_P(Backends, WrkHttp, testing::kAllBackends, testing::backend_test_name);

}  // namespace
}  // namespace shardloop
