// The io_uring poller's provided-buffer ring when it runs dry: a receive that failed with
// ENOBUFS is told (kBuffersAvailable) as soon as the ring holds a free buffer, whatever order
// the recycles and the ENOBUFS completion were seen in, and a wait never blocks while such a
// notice is due.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <thread>

#include "runtime/completion_io.h"
#include "runtime/token.h"
#include "runtime/uring_poller.h"

namespace shardloop {
namespace {

constexpr unsigned kBufferSize = 64;

struct SocketPair {
  int local = -1, peer = -1;
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    local = fds[0];
    peer = fds[1];
  }
  ~SocketPair() {
    ::close(local);
    ::close(peer);
  }
  void send(size_t n) const {
    std::string bytes(n, 'x');
    ASSERT_EQ(::write(peer, bytes.data(), n), static_cast<ssize_t>(n));
  }
};

uint64_t recv_token(uint32_t slot) {
  return with_op(Token{.slot = slot, .generation = 1}.encode(), io_ops::kRecv);
}

uint16_t buffer_id(const PollEvent& ev) {
  return static_cast<uint16_t>(ev.flags >> kCompletionBufferShift);
}

class UringBufferRing : public ::testing::Test {
 protected:
  void SetUp() override {
    auto poller = UringPoller::create(PollerOptions{
        .uring_entries = 16, .uring_buffer_count = 2, .uring_buffer_size = kBufferSize});
    if (!poller.ok()) GTEST_SKIP() << "io_uring unavailable: " << poller.status();
    poller_ = std::move(*poller);
  }

  std::unique_ptr<UringPoller> poller_;
};

// Both buffers go to connection A; B's receive then fails with ENOBUFS. The test reaps one
// completion per wait, as a worker whose batch is full would, and recycles each of A's buffers
// as soon as it sees it, so the recycles come before the ENOBUFS completion is reaped although
// the kernel posted it before them. B must still be told, without waiting for a recycle that
// will never come (nothing else is in flight).
TEST_F(UringBufferRing, StarvedReceiverIsToldWhenRecyclesPrecedeItsEnobufs) {
  SocketPair a, b;
  a.send(2 * kBufferSize);
  b.send(10);
  ASSERT_TRUE(poller_->recv_multishot(a.local, recv_token(1)).ok());
  ASSERT_TRUE(poller_->recv_multishot(b.local, recv_token(2)).ok());

  std::array<PollEvent, 1> one{};
  bool b_starved = false;
  size_t a_bytes = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!b_starved && std::chrono::steady_clock::now() < deadline) {
    auto n = poller_->wait(absl::MakeSpan(one), 0);
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n == 0) continue;
    const PollEvent& ev = one[0];
    if (ev.token == recv_token(1) && ev.result > 0) {
      a_bytes += static_cast<size_t>(ev.result);
      poller_->recycle_buffer(buffer_id(ev));
    } else if (ev.token == recv_token(2) && ev.result == -ENOBUFS) {
      b_starved = true;
    } else if (ev.token == recv_token(2) && ev.result > 0) {
      GTEST_SKIP() << "this kernel served B before A emptied the ring; the order under test "
                      "did not arise";
    }
  }
  ASSERT_TRUE(b_starved) << "B's receive never failed with ENOBUFS (A took " << a_bytes << ")";
  poller_->notify_when_buffers_available(with_op(recv_token(2), io_ops::kBuffersAvailable));

  // A blocking wait: the notice is due now, so it must come back at once, not after 2 s.
  std::array<PollEvent, 8> events{};
  const auto start = std::chrono::steady_clock::now();
  auto n = poller_->wait(absl::MakeSpan(events), 2'000'000'000);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(n.ok()) << n.status();
  bool told = false;
  for (size_t i = 0; i < *n; ++i) {
    told |= events[i].token == with_op(recv_token(2), io_ops::kBuffersAvailable);
  }
  EXPECT_TRUE(told) << "B was not told that buffers are free (" << *n << " events)";
  EXPECT_LT(waited, std::chrono::milliseconds(500));
}

// While every buffer is lent out, a starved receiver is not told (its receive would only fail
// again); the first recycle makes the notice due.
TEST_F(UringBufferRing, StarvedReceiverWaitsWhileEveryBufferIsLent) {
  SocketPair a, b;
  a.send(2 * kBufferSize);
  b.send(10);
  ASSERT_TRUE(poller_->recv_multishot(a.local, recv_token(1)).ok());
  std::array<PollEvent, 8> events{};
  std::vector<uint16_t> held;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (held.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    auto n = poller_->wait(absl::MakeSpan(events), 0);
    ASSERT_TRUE(n.ok()) << n.status();
    for (size_t i = 0; i < *n; ++i) {
      if (events[i].token == recv_token(1) && events[i].result > 0) {
        held.push_back(buffer_id(events[i]));
      }
    }
  }
  ASSERT_EQ(held.size(), 2u);
  ASSERT_TRUE(poller_->recv_multishot(b.local, recv_token(2)).ok());
  bool b_starved = false;
  for (int i = 0; i < 100 && !b_starved; ++i) {
    auto n = poller_->wait(absl::MakeSpan(events), 10'000'000);
    ASSERT_TRUE(n.ok()) << n.status();
    for (size_t k = 0; k < *n; ++k) {
      b_starved |= events[k].token == recv_token(2) && events[k].result == -ENOBUFS;
    }
  }
  ASSERT_TRUE(b_starved);
  const uint64_t notice = with_op(recv_token(2), io_ops::kBuffersAvailable);
  poller_->notify_when_buffers_available(notice);
  auto n = poller_->wait(absl::MakeSpan(events), 20'000'000);
  ASSERT_TRUE(n.ok()) << n.status();
  for (size_t i = 0; i < *n; ++i) EXPECT_NE(events[i].token, notice) << "told with no buffer free";

  poller_->recycle_buffer(held[0]);
  n = poller_->wait(absl::MakeSpan(events), 2'000'000'000);
  ASSERT_TRUE(n.ok()) << n.status();
  bool told = false;
  for (size_t i = 0; i < *n; ++i) told |= events[i].token == notice;
  EXPECT_TRUE(told);
  poller_->recycle_buffer(held[1]);
}

}  // namespace
}  // namespace shardloop
