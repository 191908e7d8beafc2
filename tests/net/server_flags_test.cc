// The servers' shared command line (examples/common/server_flags.h): every server binary takes
// --poll_mode, and a bad value, or a shared-epoll mode with io_uring, stops it before anything
// starts, with a message naming the choices.
#include "examples/common/server_flags.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/net/subprocess.h"

namespace shardloop {
namespace {

examples::ServerFlags flags(std::string backend, std::string mode) {
  return {.host = "127.0.0.1", .port = 0, .workers = 2, .backend = backend, .poll_mode = mode};
}

TEST(ServerSetup, EveryModeParsesIntoTheRuntimeOptions) {
  for (PollMode mode : kAllPollModes) {
    auto setup = examples::server_setup(flags("epoll", std::string(poll_mode_name(mode))));
    ASSERT_TRUE(setup.ok()) << setup.status();
    EXPECT_EQ(setup->runtime.poll_mode, mode);
    EXPECT_EQ(setup->runtime.backend, Backend::kEpoll);
    EXPECT_EQ(setup->runtime.workers, 2u);
  }
}

TEST(ServerSetup, BadValuesAreRefusedWithTheReason) {
  auto bogus = examples::server_setup(flags("auto", "bogus"));
  ASSERT_FALSE(bogus.ok());
  EXPECT_NE(bogus.status().message().find("sharded, global, throttled or adaptive"),
            std::string::npos);
  auto uring = examples::server_setup(flags("io_uring", "global"));
  ASSERT_FALSE(uring.ok());
  EXPECT_NE(uring.status().message().find("needs --backend=epoll"), std::string::npos);
  auto backend = examples::server_setup(flags("kqueue", "sharded"));
  EXPECT_FALSE(backend.ok());
  auto port = examples::server_setup(
      {.host = "127.0.0.1", .port = 70000, .backend = "auto", .poll_mode = "adaptive"});
  EXPECT_FALSE(port.ok());
}

class ServerBinaryFlags : public ::testing::TestWithParam<const char*> {};

TEST_P(ServerBinaryFlags, BogusPollModeExitsBeforeStarting) {
  auto r =
      testing::run_process({GetParam(), "--port=0", "--poll_mode=bogus"}, std::chrono::seconds(10));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("unknown poll mode 'bogus'"), std::string::npos) << r.output;
}

TEST_P(ServerBinaryFlags, SharedModeWithIoUringExitsBeforeStarting) {
  auto r =
      testing::run_process({GetParam(), "--port=0", "--poll_mode=throttled", "--backend=io_uring"},
                           std::chrono::seconds(10));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("needs --backend=epoll"), std::string::npos) << r.output;
}

INSTANTIATE_TEST_SUITE_P(Servers, ServerBinaryFlags,
                         ::testing::Values(SHARDLOOP_ECHO_SERVER_PATH, SHARDLOOP_HTTP_SERVER_PATH,
                                           SHARDLOOP_KV_SERVER_PATH, SHARDLOOP_RPC_SERVER_PATH),
                         [](const auto& info) {
                           std::string path = info.param;
                           return path.substr(path.rfind('/') + 1);
                         });

}  // namespace
}  // namespace shardloop
