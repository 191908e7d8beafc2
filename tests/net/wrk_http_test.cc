// examples/http_server's service under wrk (when installed): `wrk -t1 -c50 -d1s` must see
// requests completed, no socket errors (connect, read, write, timeout) and no non-2xx/3xx
// answers, on both backends.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
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

  auto r = testing::run_process({"wrk", "-t1", "-c50", "-d1s", url}, std::chrono::seconds(20));
  server->reset();
  rt.stop();

  ASSERT_FALSE(r.timed_out) << r.output;
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // wrk prints these lines only when something went wrong.
  EXPECT_EQ(r.output.find("Socket errors"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Non-2xx or 3xx responses"), std::string::npos) << r.output;
  // "  12345 requests in 1.00s, ..."
  const size_t at = r.output.find(" requests in ");
  ASSERT_NE(at, std::string::npos) << r.output;
  size_t begin = at;
  while (begin > 0 && r.output[begin - 1] >= '0' && r.output[begin - 1] <= '9') --begin;
  uint64_t requests = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::string_view(r.output.data() + begin, at - begin), &requests))
      << r.output;
  EXPECT_GT(requests, 0u) << r.output;
}

INSTANTIATE_TEST_SUITE_P(Backends, WrkHttp, testing::kAllBackends, testing::backend_test_name);

}  // namespace
}  // namespace shardloop
