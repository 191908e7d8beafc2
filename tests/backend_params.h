// Parameterising tests over poller backends and poll modes: every suite that takes a Backend
// runs once per backend, every suite that takes a RuntimeConfig once per (backend, poll mode)
// pair the runtime supports, and each skips (with the kernel's reason) where the backend is
// unavailable, rather than passing silently.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "runtime/poll_mode.h"
#include "runtime/poller.h"
#include "runtime/runtime.h"

namespace shardloop::testing {

inline const auto kAllBackends = ::testing::Values(Backend::kEpoll, Backend::kIoUring);

inline std::string backend_test_name(const ::testing::TestParamInfo<Backend>& info) {
  return std::string(backend_name(info.param));
}

// A backend and a poll mode: what the integration suites run over.
struct RuntimeConfig {
  Backend backend = Backend::kEpoll;
  PollMode mode = PollMode::kSharded;

  RuntimeOptions options(size_t workers) const {
    return RuntimeOptions{.workers = workers, .backend = backend, .poll_mode = mode};
  }
};

inline Backend backend_of(Backend backend) { return backend; }
inline Backend backend_of(const RuntimeConfig& config) { return config.backend; }

// Every mode on epoll; on io_uring the modes that keep per-worker pollers (the shared modes
// are epoll designs and refuse io_uring).
inline const auto kAllConfigs =
    ::testing::Values(RuntimeConfig{Backend::kEpoll, PollMode::kSharded},
                      RuntimeConfig{Backend::kEpoll, PollMode::kGlobal},
                      RuntimeConfig{Backend::kEpoll, PollMode::kThrottled},
                      RuntimeConfig{Backend::kEpoll, PollMode::kAdaptive},
                      RuntimeConfig{Backend::kIoUring, PollMode::kSharded},
                      RuntimeConfig{Backend::kIoUring, PollMode::kAdaptive});

inline std::string config_test_name(const ::testing::TestParamInfo<RuntimeConfig>& info) {
  return std::string(backend_name(info.param.backend)) + "_" +
         std::string(poll_mode_name(info.param.mode));
}

// Skips the current test when the backend of `param` (a Backend or a RuntimeConfig) cannot run
// here.
#define SHARDLOOP_SKIP_IF_UNAVAILABLE(param)                                                \
  do {                                                                                      \
    auto resolved_ = ::shardloop::resolve_backend(::shardloop::testing::backend_of(param)); \
    if (!resolved_.ok()) GTEST_SKIP() << "backend unavailable: " << resolved_.status();     \
  } while (0)

// A test parameterised over the backends (kAllBackends): one the kernel lacks is skipped with
// the reason, and options(n) is an n-worker runtime on the test's backend.
class PerBackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam()); }
  RuntimeOptions options(size_t workers) const {
    return RuntimeOptions{.workers = workers, .backend = GetParam()};
  }
};

}  // namespace shardloop::testing
