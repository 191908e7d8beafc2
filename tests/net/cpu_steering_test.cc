// Listener steering: with steering=cpu, a connection made from a thread pinned to CPU k is
// accepted by the worker pinned to CPU k. With steering=hash the split is only reported.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "net/server.h"
#include "runtime/runtime.h"
#include "tests/backend_params.h"

namespace shardloop {
namespace {

using net::Address;

// Opens `count` connections from a thread pinned to `cpu`, and closes them.
void connect_from_cpu(int cpu, const Address& addr, int count) {
  std::thread t([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    ASSERT_EQ(pthread_setaffinity_np(pthread_self(), sizeof(set), &set), 0);
    std::vector<int> fds;
    for (int i = 0; i < count; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(::connect(fd, addr.sockaddr_ptr(), addr.length()), 0) << strerror(errno);
      fds.push_back(fd);
    }
    for (int fd : fds) ::close(fd);
  });
  t.join();
}

uint64_t accepted_by(const net::Server& server, size_t worker) {
  return server.stats().accepted[worker];
}

void wait_for_accepts(const net::Server& server, uint64_t total) {
  for (int i = 0; i < 500; ++i) {
    uint64_t sum = 0;
    for (uint64_t a : server.stats().accepted) sum += a;
    if (sum >= total) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

class Steering : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam());
    if (allowed_cpus().size() < 2) GTEST_SKIP() << "needs two CPUs";
  }
};

TEST_P(Steering, CpuSteeringAcceptsOnTheWorkerOfTheClientsCpu) {
  std::vector<int> cpus = allowed_cpus();
  Runtime rt({.workers = 2, .pin_cpus = true, .backend = GetParam()});
  ASSERT_TRUE(rt.start().ok());
  auto server = net::Server::listen(rt, *Address::parse("127.0.0.1:0"),
                                    [](net::Connection) -> Task<void> { co_return; },
                                    {.steering = net::Steering::kCpu});
  ASSERT_TRUE(server.ok());
  if ((*server)->steering() != net::Steering::kCpu) GTEST_SKIP() << "kernel refused steering";
  const int kConnections = 200;
  for (size_t k = 0; k < 2; ++k) {
    const uint64_t before = accepted_by(**server, k);
    connect_from_cpu(cpus[k], (*server)->address(), kConnections);
    wait_for_accepts(**server, before + kConnections + (k == 1 ? kConnections : 0));
    EXPECT_EQ(accepted_by(**server, k) - before, static_cast<uint64_t>(kConnections))
        << "connections from CPU " << cpus[k] << " should all land on worker " << k;
  }
  rt.drain(absl::Seconds(5));
}

TEST_P(Steering, HashSteeringSplitIsReported) {
  Runtime rt({.workers = 2, .pin_cpus = true, .backend = GetParam()});
  ASSERT_TRUE(rt.start().ok());
  auto server = net::Server::listen(rt, *Address::parse("127.0.0.1:0"),
                                    [](net::Connection) -> Task<void> { co_return; });
  ASSERT_TRUE(server.ok());
  connect_from_cpu(allowed_cpus()[0], (*server)->address(), 200);
  wait_for_accepts(**server, 200);
  auto stats = (*server)->stats();
  RecordProperty("worker0", static_cast<int>(stats.accepted[0]));
  RecordProperty("worker1", static_cast<int>(stats.accepted[1]));
  std::printf(
      "steering=hash, 200 connections from one CPU: worker 0 accepted %llu, worker 1 %llu\n",
      static_cast<unsigned long long>(stats.accepted[0]),
      static_cast<unsigned long long>(stats.accepted[1]));
  EXPECT_EQ(stats.accepted[0] + stats.accepted[1], 200u);
  rt.drain(absl::Seconds(5));
}

INSTANTIATE_TEST_SUITE_P(Backends, Steering, testing::kAllBackends, testing::backend_test_name);

}  // namespace
}  // namespace shardloop
