// Parameterising tests over poller backends: every suite that takes a Backend runs once per
// backend, and skips (with the kernel's reason) where the backend is unavailable, rather than
// passing silently.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "runtime/poller.h"

namespace shardloop::testing {

inline const auto kAllBackends = ::testing::Values(Backend::kEpoll, Backend::kIoUring);

inline std::string backend_test_name(const ::testing::TestParamInfo<Backend>& info) {
  return std::string(backend_name(info.param));
}

// Skips the current test when `backend` cannot run here.
#define SHARDLOOP_SKIP_IF_UNAVAILABLE(backend)                                          \
  do {                                                                                  \
    auto resolved_ = ::shardloop::resolve_backend(backend);                             \
    if (!resolved_.ok()) GTEST_SKIP() << "backend unavailable: " << resolved_.status(); \
  } while (0)

}  // namespace shardloop::testing
