// Poller contract, run against every backend: readiness reporting, modify/remove, edge
// triggering, cross-thread wake(), timeouts, and tokens passing through unchanged. A backend
// that make_poller() refuses (io_uring is not built yet) is skipped with the factory's status.
#include "runtime/poller.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_format.h"
#include "runtime/token.h"
#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

using namespace std::chrono_literals;
using io_events::kHangup;
using io_events::kReadable;
using io_events::kWritable;

constexpr int64_t kNoWait = 0;
constexpr int64_t kForever = -1;
// For waits that are expected to return at once: bounded so a broken backend fails, not hangs.
constexpr int64_t kPromptly =
    std::chrono::duration_cast<std::chrono::nanoseconds>(testing::kPatience).count();

// Owns a pair of fds and closes them.
struct FdPair {
  int fds[2] = {-1, -1};
  ~FdPair() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  int first() const { return fds[0]; }
  int second() const { return fds[1]; }
  void close_second() {
    ::close(fds[1]);
    fds[1] = -1;
  }
};

void make_pipe(FdPair& p) {
  ASSERT_EQ(::pipe2(p.fds, O_NONBLOCK | O_CLOEXEC), 0) << strerror(errno);
}

void make_socketpair(FdPair& p) {
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p.fds), 0)
      << strerror(errno);
}

void write_byte(int fd) { ASSERT_EQ(::write(fd, "x", 1), 1) << strerror(errno); }

class PollerTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    auto poller = make_poller(GetParam());
    if (!poller.ok()) {
      GTEST_SKIP() << backend_name(GetParam()) << " unavailable: " << poller.status();
    }
    poller_ = std::move(*poller);
    ASSERT_EQ(poller_->backend(), GetParam());
  }

  // Waits once; fails the test on a poller error.
  size_t wait(int64_t timeout_ns) {
    auto n = poller_->wait(absl::MakeSpan(events_), timeout_ns);
    EXPECT_TRUE(n.ok()) << n.status();
    last_n_ = n.ok() ? *n : 0;
    return last_n_;
  }

  // The events the last wait() returned, for failure messages.
  std::string got() const {
    std::string s = "got:";
    for (size_t i = 0; i < last_n_; ++i) {
      Token t = Token::decode(events_[i].token);
      s += " {slot " + std::to_string(t.slot) + " gen " + std::to_string(t.generation) +
           " events 0x" + absl::StrFormat("%x", events_[i].events) + "}";
    }
    return s;
  }

  // After remove(fd, token): a readiness backend reports nothing more for the fd, but a
  // completion backend may still deliver events that were in flight (poller.h). Those must carry
  // the removed token, so the worker's registry drops them; consume them here.
  void drain_in_flight(uint64_t removed_token) {
    size_t n = wait(kNoWait);
    if (poller_->completion_io() == nullptr) {
      EXPECT_EQ(n, 0u) << "a readiness backend reported an fd after remove()";
    }
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(events_[i].token, removed_token);
  }

  // Runs `body` on a new thread that owns a new poller (replacing poller_ for the duration).
  // For tests that block in wait() and time it: a thread that has destroyed an io_uring ring, as
  // earlier tests in this process do on the main thread, has its next blocking system call
  // interrupted (EINTR) a few milliseconds later by the ring's exit work, and the pollers return
  // early on EINTR. A fresh thread has no such history, so the test measures the poller alone.
  template <typename Body>
  void on_fresh_thread(Body body) {
    std::thread t([&] {
      poller_.reset();
      auto poller = make_poller(GetParam());
      ASSERT_TRUE(poller.ok()) << poller.status();
      poller_ = std::move(*poller);
      body();
      poller_.reset();  // destroyed by its owner, so any exit work lands on this thread
    });
    t.join();
  }

  std::unique_ptr<Poller> poller_;
  std::array<PollEvent, 16> events_{};
  size_t last_n_ = 0;
};

TEST_P(PollerTest, ReadableEventCarriesTokenAndReadableBit) {
  FdPair p;
  make_pipe(p);
  const uint64_t token = Token{7, 3, 0}.encode();
  ASSERT_TRUE(poller_->add(p.first(), token, kReadable).ok());

  EXPECT_EQ(wait(kNoWait), 0u) << "nothing written yet; " << got();

  write_byte(p.second());
  ASSERT_EQ(wait(kPromptly), 1u);
  EXPECT_EQ(events_[0].token, token);
  EXPECT_TRUE(events_[0].events & kReadable);
  EXPECT_FALSE(events_[0].events & kWritable);
}

TEST_P(PollerTest, ModifyChangesInterest) {
  FdPair p;
  make_socketpair(p);
  const uint64_t token = Token{1, 1, 0}.encode();

  // Read interest only: an idle (but writable) socket reports nothing.
  ASSERT_TRUE(poller_->add(p.first(), token, kReadable).ok());
  EXPECT_EQ(wait(kNoWait), 0u) << got();

  write_byte(p.second());
  ASSERT_EQ(wait(kPromptly), 1u);
  EXPECT_EQ(events_[0].token, token);
  EXPECT_TRUE(events_[0].events & kReadable);
  EXPECT_FALSE(events_[0].events & kWritable) << "write readiness reported without interest";

  // Write interest only: the socket is writable, so that is reported, and the unread byte is not.
  ASSERT_TRUE(poller_->modify(p.first(), token, kWritable).ok());
  ASSERT_EQ(wait(kPromptly), 1u);
  EXPECT_EQ(events_[0].token, token);
  EXPECT_TRUE(events_[0].events & kWritable);
  EXPECT_FALSE(events_[0].events & kReadable) << "read readiness reported without interest";

  // More data arriving is not a write-interest event.
  write_byte(p.second());
  EXPECT_EQ(wait(kNoWait), 0u) << got();

  // Both: the pending bytes and the free buffer are both reported.
  ASSERT_TRUE(poller_->modify(p.first(), token, kReadable | kWritable).ok());
  ASSERT_EQ(wait(kPromptly), 1u);
  EXPECT_EQ(events_[0].token, token);
  EXPECT_EQ(events_[0].events & (kReadable | kWritable), kReadable | kWritable);
}

TEST_P(PollerTest, ModifyReplacesTheToken) {
  // "Replaces the interest and token of a registered fd": afterwards, events carry only the
  // new token.
  FdPair p;
  make_socketpair(p);
  const uint64_t old_token = Token{1, 1, 0}.encode();
  const uint64_t new_token = Token{2, 5, 0}.encode();
  ASSERT_TRUE(poller_->add(p.first(), old_token, kReadable).ok());
  EXPECT_EQ(wait(kNoWait), 0u) << got();

  ASSERT_TRUE(poller_->modify(p.first(), new_token, kReadable).ok());
  EXPECT_EQ(wait(kNoWait), 0u) << got();

  write_byte(p.second());
  size_t n = wait(kPromptly);
  ASSERT_GE(n, 1u);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(events_[i].token, new_token)
        << "event #" << i << " carries the token modify() replaced";
  }
  EXPECT_EQ(n, 1u) << "the fd is reported more than once (still registered under both tokens?)";
  EXPECT_EQ(wait(kNoWait), 0u) << got();
}

TEST_P(PollerTest, RemoveStopsEvents) {
  FdPair p;
  make_pipe(p);
  const uint64_t token = Token{0, 0, 0}.encode();
  ASSERT_TRUE(poller_->add(p.first(), token, kReadable).ok());
  ASSERT_TRUE(poller_->remove(p.first(), token).ok());
  drain_in_flight(token);

  write_byte(p.second());
  EXPECT_EQ(wait(kNoWait), 0u) << got();
  write_byte(p.second());
  EXPECT_EQ(wait(std::chrono::nanoseconds(5ms).count()), 0u) << got();
}

TEST_P(PollerTest, RemoveOnlyAffectsThatFd) {
  FdPair a, b;
  make_pipe(a);
  make_pipe(b);
  const uint64_t token_b = Token{2, 0, 0}.encode();
  const uint64_t token_a = Token{1, 0, 0}.encode();
  ASSERT_TRUE(poller_->add(a.first(), token_a, kReadable).ok());
  ASSERT_TRUE(poller_->add(b.first(), token_b, kReadable).ok());
  ASSERT_TRUE(poller_->remove(a.first(), token_a).ok());
  drain_in_flight(token_a);

  write_byte(a.second());
  write_byte(b.second());
  ASSERT_EQ(wait(kPromptly), 1u);
  EXPECT_EQ(events_[0].token, token_b);
  EXPECT_EQ(wait(kNoWait), 0u) << got();
}

TEST_P(PollerTest, EdgeTriggeredReportsEachNewReadinessOnce) {
  FdPair p;
  make_pipe(p);
  const uint64_t token = Token{4, 0, 0}.encode();
  ASSERT_TRUE(poller_->add(p.first(), token, kReadable).ok());

  write_byte(p.second());
  ASSERT_EQ(wait(kPromptly), 1u);
  EXPECT_EQ(events_[0].token, token);

  // The byte is still unread, but no new edge happened.
  EXPECT_EQ(wait(kNoWait), 0u) << got();
  EXPECT_EQ(wait(kNoWait), 0u) << got();

  // A new byte is a new edge.
  write_byte(p.second());
  ASSERT_EQ(wait(kPromptly), 1u);
  EXPECT_EQ(events_[0].token, token);
  EXPECT_EQ(wait(kNoWait), 0u) << got();
}

TEST_P(PollerTest, HangupIsReported) {
  FdPair p;
  make_pipe(p);
  const uint64_t token = Token{9, 1, 0}.encode();
  ASSERT_TRUE(poller_->add(p.first(), token, kReadable).ok());
  p.close_second();
  ASSERT_EQ(wait(kPromptly), 1u);
  EXPECT_EQ(events_[0].token, token);
  EXPECT_TRUE(events_[0].events & kHangup);
}

TEST_P(PollerTest, ManyReadyFdsAreReportedOnceEach) {
  constexpr int kFds = 10;
  FdPair pipes[kFds];
  for (int i = 0; i < kFds; ++i) {
    make_pipe(pipes[i]);
    ASSERT_TRUE(
        poller_->add(pipes[i].first(), Token{static_cast<uint32_t>(i), 0, 0}.encode(), kReadable)
            .ok());
  }
  for (auto& p : pipes) write_byte(p.second());

  // Collect with a deliberately small output span to exercise batching across waits.
  std::array<PollEvent, 3> small{};
  int seen[kFds] = {};
  size_t total = 0;
  while (total < kFds) {
    auto n = poller_->wait(absl::MakeSpan(small), kPromptly);
    ASSERT_TRUE(n.ok()) << n.status();
    ASSERT_GT(*n, 0u) << "only " << total << " of " << kFds << " events arrived";
    ASSERT_LE(*n, small.size());
    for (size_t i = 0; i < *n; ++i) {
      Token t = Token::decode(small[i].token);
      ASSERT_LT(t.slot, static_cast<uint32_t>(kFds));
      ++seen[t.slot];
    }
    total += *n;
  }
  for (int i = 0; i < kFds; ++i) EXPECT_EQ(seen[i], 1) << "fd #" << i;
  EXPECT_EQ(wait(kNoWait), 0u) << got();
}

TEST_P(PollerTest, WaitNeedsRoomForOneEvent) {
  auto n = poller_->wait(absl::Span<PollEvent>(), kNoWait);
  EXPECT_FALSE(n.ok());
}

TEST_P(PollerTest, WakeFromAnotherThreadEndsBlockingWait) {
  on_fresh_thread([&] {
    // Safety net: if wake() is lost, this pipe becomes readable after a long delay, so the wait
    // returns an event (and the test fails) instead of hanging.
    FdPair safety;
    make_pipe(safety);
    ASSERT_TRUE(poller_->add(safety.first(), Token{1, 0, 0}.encode(), kReadable).ok());
    ASSERT_EQ(wait(kNoWait), 0u) << got();  // registration submitted, nothing pending

    const uint64_t wakeups_before = poller_->counters().wakeups_received;
    std::atomic<bool> returned{false};
    std::thread waker([&] {
      std::this_thread::sleep_for(20ms);  // let the owner block first (not required)
      poller_->wake();
      if (!testing::wait_until([&] { return returned.load(); })) write_byte(safety.second());
    });

    const auto start = std::chrono::steady_clock::now();
    size_t n = wait(kForever);
    returned = true;
    const auto elapsed = std::chrono::steady_clock::now() - start;
    waker.join();

    EXPECT_EQ(n, 0u) << "wake() was lost (the safety pipe fired) or reported as an event; "
                     << got();
    EXPECT_LT(elapsed, testing::kPatience);
    EXPECT_EQ(poller_->counters().wakeups_received, wakeups_before + 1)
        << "the wait returned without consuming a wakeup";
  });
}

TEST_P(PollerTest, WakeBeforeWaitIsNotLostAndIsConsumed) {
  on_fresh_thread([&] {
    poller_->wake();
    poller_->wake();  // several wakes before a wait coalesce
    EXPECT_EQ(wait(kPromptly), 0u) << got();
    EXPECT_GE(poller_->counters().wakeups_received, 1u);

    // The wakeup was consumed: a timed wait now runs to its timeout.
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(wait(std::chrono::nanoseconds(10ms).count()), 0u) << got();
    EXPECT_GE(std::chrono::steady_clock::now() - start, 10ms);
  });
}

TEST_P(PollerTest, TimedWaitLastsAtLeastTheTimeout) {
  on_fresh_thread([&] {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(wait(std::chrono::nanoseconds(20ms).count()), 0u) << got();
    // Lower bound only: the machine may be slow, never early.
    EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
  });
}

TEST_P(PollerTest, SubMillisecondTimeoutIsNotZero) {
  on_fresh_thread([&] {
    // 1.5 ms must not be truncated to 1 ms (or 0): the backends take nanoseconds.
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(wait(1'500'000), 0u) << got();
    EXPECT_GE(std::chrono::steady_clock::now() - start, 1500us);
  });
}

TEST_P(PollerTest, CountsWaitCalls) {
  const uint64_t before = poller_->counters().wait_calls;
  wait(kNoWait);
  wait(kNoWait);
  EXPECT_EQ(poller_->counters().wait_calls, before + 2);
}

TEST_P(PollerTest, TokenBitsPassThroughUnchanged) {
  FdPair p;
  make_pipe(p);
  // Slot and generation at their maximum (op 0 = readiness): the poller must hand the token back
  // bit for bit.
  const uint64_t token = Token{0xFFFFFFFFu, Token::kGenerationMask, 0}.encode();
  ASSERT_NE(token, kWakeupToken);
  ASSERT_NE(token, kIgnoreToken);
  ASSERT_TRUE(poller_->add(p.first(), token, kReadable).ok());
  write_byte(p.second());
  ASSERT_EQ(wait(kPromptly), 1u);
  EXPECT_EQ(events_[0].token, token);
}

INSTANTIATE_TEST_SUITE_P(Backends, PollerTest,
                         ::testing::Values(Backend::kEpoll, Backend::kIoUring),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(backend_name(info.param));
                         });

// --- backend selection -------------------------------------------------------------------------

TEST(PollerFactoryTest, AutoResolvesToAWorkingBackend) {
  auto resolved = resolve_backend(Backend::kAuto);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  ASSERT_NE(*resolved, Backend::kAuto);
  auto poller = make_poller(*resolved);
  ASSERT_TRUE(poller.ok()) << poller.status();
  EXPECT_EQ((*poller)->backend(), *resolved);
}

TEST(PollerFactoryTest, MakePollerNeedsAResolvedBackend) {
  EXPECT_FALSE(make_poller(Backend::kAuto).ok());
  EXPECT_EQ(*resolve_backend(Backend::kEpoll), Backend::kEpoll);
}

TEST(PollerFactoryTest, RefusedIoUringFailsExplicitlyAndAutoFallsBackToEpoll) {
  struct Restore {
    ~Restore() { inject_io_uring_failure_for_testing(0); }
  } restore;
  inject_io_uring_failure_for_testing(ENOSYS);
  auto explicit_uring = resolve_backend(Backend::kIoUring);
  EXPECT_FALSE(explicit_uring.ok());
  auto automatic = resolve_backend(Backend::kAuto);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ(*automatic, Backend::kEpoll);
}

TEST(PollerFactoryTest, BackendNamesRoundTrip) {
  for (Backend b : {Backend::kEpoll, Backend::kIoUring, Backend::kAuto}) {
    auto parsed = parse_backend(backend_name(b));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, b);
  }
  EXPECT_EQ(*parse_backend("uring"), Backend::kIoUring);
  EXPECT_FALSE(parse_backend("kqueue").ok());
  EXPECT_FALSE(parse_backend("").ok());
}

// --- tokens ------------------------------------------------------------------------------------

TEST(TokenTest, EncodeDecodeRoundTrip) {
  const Token cases[] = {
      {0, 0, 0},
      {1, 1, 0},
      {0xFFFFFFFFu, 0, 0},
      {0, Token::kGenerationMask, 0},
      {0, 0, 0xFF},
      {123456, 654321, 7},
      {0xFFFFFFFFu, Token::kGenerationMask, 0xFF},
  };
  for (const Token& t : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "slot " << t.slot << " gen " << t.generation << " op " << int{t.op});
    EXPECT_EQ(Token::decode(t.encode()), t);
  }
}

TEST(TokenTest, BitLayout) {
  EXPECT_EQ((Token{0x12345678u, 0xABCDEF, 0x9A}.encode()), 0x9AABCDEF12345678ull);
  EXPECT_EQ((Token{1, 0, 0}.encode()), 1ull);
  EXPECT_EQ((Token{0, 1, 0}.encode()), 1ull << 32);
  EXPECT_EQ((Token{0, 0, 1}.encode()), 1ull << 56);
}

TEST(TokenTest, GenerationKeepsOnlyLow24Bits) {
  // Bits above the mask must neither survive nor spill into the op byte.
  const Token t{5, (1u << 24) | 0x42, 3};
  const Token back = Token::decode(t.encode());
  EXPECT_EQ(back.slot, 5u);
  EXPECT_EQ(back.generation, 0x42u);
  EXPECT_EQ(back.op, 3);
  EXPECT_EQ(Token::decode(Token{0, 0xFFFFFFFFu, 0}.encode()).generation, Token::kGenerationMask);
  EXPECT_EQ(Token::decode(Token{0, 0xFFFFFFFFu, 0}.encode()).op, 0);
  static_assert(Token::kGenerationMask == 0xFFFFFF);
}

TEST(TokenTest, IsConstexpr) {
  static_assert(Token::decode(Token{3, 4, 5}.encode()) == Token{3, 4, 5});
}

}  // namespace
}  // namespace shardloop
