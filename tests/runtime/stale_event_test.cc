// Worker event dispatch: an event fetched in the same poll batch as the handler that
// deregisters (and closes, and maybe reuses) its fd is dropped and counted as stale, never
// delivered. Also register_fd's error path.
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/worker.h"
#include "tests/backend_params.h"
#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

// An eventfd registered with the current worker. When it fires it records the call and, if
// told to, deregisters and closes a victim (and optionally registers a replacement in its place).
struct EventFdHandle final : IoHandle {
  Worker* worker = nullptr;
  int fd = -1;
  Token token;
  int runs = 0;
  uint32_t last_events = 0;
  EventFdHandle* victim = nullptr;
  EventFdHandle* replacement = nullptr;

  // On the owner worker.
  void open_and_register() {
    worker = Worker::current();
    ASSERT_NE(worker, nullptr);
    fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ASSERT_GE(fd, 0) << strerror(errno);
    auto t = worker->register_fd(fd, this, io_events::kReadable);
    ASSERT_TRUE(t.ok()) << t.status();
    token = *t;
  }
  void signal() const {
    uint64_t one = 1;
    ASSERT_EQ(::write(fd, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  }
  void close_now() {
    if (fd < 0) return;
    worker->deregister_fd(fd, token);
    ::close(fd);
    fd = -1;
  }

  void on_io(const PollEvent& event) override {
    ++runs;
    last_events = event.events;
    if (victim != nullptr && victim->fd >= 0) {
      victim->close_now();
      if (replacement != nullptr) replacement->open_and_register();
    }
  }
};

class StaleEventTest : public ::testing::TestWithParam<testing::RuntimeConfig> {
 protected:
  void SetUp() override { SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam()); }
};

TEST_P(StaleEventTest, HandlerClosingTheOtherFdInTheSameBatchDropsItsEvent) {
  // Handles outlive the runtime (declared first), so nothing the worker holds can dangle.
  EventFdHandle a, b;
  Runtime rt(GetParam().options(1));
  ASSERT_TRUE(rt.start().ok());
  Worker& w = rt.worker(0);

  const WorkerStats before = rt.call_on(0, [&] {
    a.open_and_register();
    b.open_and_register();
    a.victim = &b;
    b.victim = &a;
    WorkerStats s = w.stats();
    // Both become ready before this worker polls again, so they arrive in one batch.
    a.signal();
    b.signal();
    return s;
  });
  ASSERT_NE(a.token, b.token);

  // The batch is dispatched as soon as this message returns and before the next one runs.
  const WorkerStats after = rt.call_on(0, [&] {
    WorkerStats s = w.stats();
    a.close_now();
    b.close_now();
    return s;
  });

  EXPECT_EQ(a.runs + b.runs, 1) << "a: " << a.runs << ", b: " << b.runs;
  EXPECT_EQ(after.stale_events, before.stale_events + 1);
  EXPECT_EQ(after.events, before.events + 1);
  EXPECT_TRUE((a.runs ? a.last_events : b.last_events) & io_events::kReadable);
  EXPECT_EQ(rt.call_on(0, [&] { return w.registered_fds(); }), 0u);
  rt.stop();
}

TEST_P(StaleEventTest, StaleEventIsNotDeliveredToTheSlotsNewOwner) {
  // The handler closes the victim and immediately registers a fresh eventfd, which reuses the
  // victim's registry slot (and very likely its fd number). The victim's event, still in the
  // batch, carries the old generation and must not reach the newcomer.
  EventFdHandle a, b, newcomer_a, newcomer_b;
  Runtime rt(GetParam().options(1));
  ASSERT_TRUE(rt.start().ok());
  Worker& w = rt.worker(0);

  const WorkerStats before = rt.call_on(0, [&] {
    a.open_and_register();
    b.open_and_register();
    a.victim = &b;
    a.replacement = &newcomer_b;
    b.victim = &a;
    b.replacement = &newcomer_a;
    WorkerStats s = w.stats();
    a.signal();
    b.signal();
    return s;
  });
  const Token a_token = a.token, b_token = b.token;

  const WorkerStats after = rt.call_on(0, [&] {
    WorkerStats s = w.stats();
    for (EventFdHandle* h : {&a, &b, &newcomer_a, &newcomer_b}) h->close_now();
    return s;
  });

  ASSERT_EQ(a.runs + b.runs, 1);
  EventFdHandle& newcomer = a.runs == 1 ? newcomer_b : newcomer_a;
  const Token victim_token = a.runs == 1 ? b_token : a_token;
  EXPECT_EQ(newcomer.token.slot, victim_token.slot) << "slot was not reused; scenario not hit";
  EXPECT_NE(newcomer.token.generation, victim_token.generation);
  EXPECT_EQ(newcomer_a.runs + newcomer_b.runs, 0) << "stale event reached the slot's new owner";
  EXPECT_EQ(after.stale_events, before.stale_events + 1);
  EXPECT_EQ(after.events, before.events + 1);
  rt.stop();
}

TEST_P(StaleEventTest, EventsForLiveHandlesAreAllDelivered) {
  constexpr int kHandles = 20;
  std::vector<EventFdHandle> handles(kHandles);
  Runtime rt(GetParam().options(1));
  ASSERT_TRUE(rt.start().ok());
  Worker& w = rt.worker(0);

  const WorkerStats before = rt.call_on(0, [&] {
    for (auto& h : handles) h.open_and_register();
    WorkerStats s = w.stats();
    for (auto& h : handles) h.signal();
    return s;
  });
  const WorkerStats after = rt.call_on(0, [&] {
    WorkerStats s = w.stats();
    for (auto& h : handles) h.close_now();
    return s;
  });
  for (int i = 0; i < kHandles; ++i) EXPECT_EQ(handles[i].runs, 1) << "handle " << i;
  EXPECT_EQ(after.events, before.events + kHandles);
  EXPECT_EQ(after.stale_events, before.stale_events);
  rt.stop();
}

INSTANTIATE_TEST_SUITE_P(Backends, StaleEventTest, testing::kAllConfigs, testing::config_test_name);

// epoll reports a bad registration synchronously (io_uring reports it later, as a completion).
TEST(RegisterFdTest, FailedRegistrationLeavesNoSlotBehind) {
  EventFdHandle h;
  Runtime rt({.workers = 1, .backend = Backend::kEpoll});
  ASSERT_TRUE(rt.start().ok());
  Worker& w = rt.worker(0);
  rt.call_on(0, [&] {
    const size_t before = w.registered_fds();
    auto bad = w.register_fd(-1, &h, io_events::kReadable);
    EXPECT_FALSE(bad.ok());
    EXPECT_EQ(w.registered_fds(), before);

    h.open_and_register();
    EXPECT_EQ(w.registered_fds(), before + 1);
    auto twice = w.register_fd(h.fd, &h, io_events::kReadable);
    EXPECT_FALSE(twice.ok()) << "the poller accepted the same fd twice";
    EXPECT_EQ(w.registered_fds(), before + 1);
    h.close_now();
    EXPECT_EQ(w.registered_fds(), before);
  });
  rt.stop();
}

}  // namespace
}  // namespace shardloop
