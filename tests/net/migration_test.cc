// Live connection migration (Connection::migrate), on both backends: echo connections stream
// checksummed data while random connections are moved between the workers every millisecond.
// Every stream must come back complete and in order, every handler must only ever run on the
// worker that owns its connection, and the fd count must return to its baseline.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "net/server.h"
#include "runtime/mutex.h"
#include "runtime/runtime.h"
#include "tests/backend_params.h"
#include "tests/net/test_support.h"
#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

using namespace std::chrono_literals;

// One server-side connection as the migrator sees it. `owner` is written by the worker that
// owns the connection (at start and on arrival) and read by the migrator thread to choose where
// to post; `conn` and `alive` are touched only on the owner, where the posted message re-checks
// `owner` before using them.
struct Entry {
  std::atomic<Worker*> owner{nullptr};
  net::Connection* conn = nullptr;
  bool alive = true;
};

struct Registry {
  Mutex mu;
  std::vector<std::shared_ptr<Entry>> entries ABSL_GUARDED_BY(mu);
  std::atomic<uint64_t> migrations{0};    // arrivals
  std::atomic<uint64_t> wrong_worker{0};  // a handler resumed off its connection's owner
  std::shared_ptr<Entry> pick(uint64_t r) {
    MutexLock lock(&mu);
    if (entries.empty()) return nullptr;
    return entries[r % entries.size()];
  }
};

Task<void> echo_handler(Registry* reg, net::Connection conn) {
  auto e = std::make_shared<Entry>();
  e->owner.store(Worker::current(), std::memory_order_release);
  e->conn = &conn;
  {
    MutexLock lock(&reg->mu);
    reg->entries.push_back(e);
  }
  for (;;) {
    auto chunk = co_await conn.read_chunk();
    // The coroutine must resume where its connection is registered, whatever moved.
    if (Worker::current() != conn.worker()) reg->wrong_worker.fetch_add(1);
    if (!chunk.ok() || chunk->empty()) break;
    if (!(co_await conn.write(*chunk)).ok()) break;
  }
  e->alive = false;
  (void)co_await conn.finish();
}

// The client side: `n` connections, each sending a per-connection pseudo-random byte stream and
// checking that the echo matches it byte for byte. Runs until `stop`, then finishes what is in
// flight, half-closes and waits for the server's FIN.
struct StreamClient {
  struct Conn {
    int fd = -1;
    std::mt19937_64 send_rng, check_rng, size_rng;
    uint64_t sent = 0, received = 0;
    bool mismatch = false, eof = false, write_closed = false;
  };
  std::vector<Conn> conns;
  int ep = -1;

  static char byte_at(std::mt19937_64& rng) { return static_cast<char>(rng() & 0xff); }

  bool connect_all(const net::Address& addr, size_t n) {
    ep = ::epoll_create1(EPOLL_CLOEXEC);
    conns.resize(n);
    for (size_t i = 0; i < n; ++i) {
      Conn& c = conns[i];
      c.send_rng.seed(i * 7919 + 1);
      c.check_rng.seed(i * 7919 + 1);
      c.size_rng.seed(i);
      c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (c.fd < 0 || ::connect(c.fd, addr.sockaddr_ptr(), addr.length()) != 0) return false;
      ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT;
      ev.data.u64 = i;
      ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    }
    return true;
  }

  // Drives every connection until `stop` and then until every stream is complete (or `limit`).
  void run(const std::atomic<bool>& stop, std::chrono::milliseconds limit) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    std::vector<epoll_event> events(256);
    char buf[8192];
    size_t finished = 0;
    while (finished < conns.size() && std::chrono::steady_clock::now() < give_up) {
      const bool stopping = stop.load(std::memory_order_relaxed);
      int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 10);
      for (int k = 0; k < n; ++k) {
        Conn& c = conns[events[k].data.u64];
        if (events[k].events & EPOLLIN) {
          for (;;) {
            ssize_t r = ::recv(c.fd, buf, sizeof(buf), 0);
            if (r > 0) {
              for (ssize_t j = 0; j < r; ++j) c.mismatch |= buf[j] != byte_at(c.check_rng);
              c.received += static_cast<uint64_t>(r);
              continue;
            }
            if (r == 0 && !c.eof) {
              c.eof = true;
              ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
              ++finished;
            }
            break;
          }
        }
        if (c.eof || c.write_closed) continue;
        if (stopping && c.received == c.sent) {
          ::shutdown(c.fd, SHUT_WR);
          c.write_closed = true;
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = events[k].data.u64;
          ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
          continue;
        }
        // Keep at most 64 KiB in flight per connection, in chunks of random size.
        if (!stopping && (events[k].events & EPOLLOUT) && c.sent - c.received < 64 * 1024) {
          const size_t len = 1 + (c.size_rng() % 4096);
          std::mt19937_64 probe = c.send_rng;
          char out[4096];
          for (size_t j = 0; j < len; ++j) out[j] = byte_at(probe);
          ssize_t w = ::send(c.fd, out, len, MSG_NOSIGNAL);
          if (w > 0) {
            for (ssize_t j = 0; j < w; ++j) (void)byte_at(c.send_rng);
            c.sent += static_cast<uint64_t>(w);
          }
        }
      }
    }
  }

  void close_all() {
    for (Conn& c : conns) {
      if (c.fd >= 0) ::close(std::exchange(c.fd, -1));
    }
    if (ep >= 0) ::close(std::exchange(ep, -1));
  }
  ~StreamClient() { close_all(); }
};

class Migration : public ::testing::TestWithParam<testing::RuntimeConfig> {
 protected:
  void SetUp() override { SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam()); }
};

// Acceptance: 500 streaming echo connections; for 10 s (2 s under sanitizers) the test migrates
// random connections every millisecond, several per tick, so tens of thousands of moves happen.
TEST_P(Migration, StreamsSurviveThousandsOfMigrations) {
#ifdef SHARDLOOP_SANITIZED
  std::chrono::milliseconds kDuration = 2s;
  uint64_t kMinMigrations = 200;
#else
  std::chrono::milliseconds kDuration = 10s;
  uint64_t kMinMigrations = 5000;
#endif
  // The full 10 s run is the sharded mode's on each backend; the other poll modes move the
  // same handoff through other pollers and run a fifth as long.
  if (GetParam().mode != PollMode::kSharded) {
    kDuration /= 5;
    kMinMigrations /= 5;
  }
  const size_t kConnections = 500;
  const int fds_before = testing::count_open_fds();
  Registry reg;
  {
    Runtime rt(GetParam().options(2));
    ASSERT_TRUE(rt.start().ok());
    auto server = net::Server::listen(rt, testing::loopback_any(), [&reg](net::Connection c) {
      return echo_handler(&reg, std::move(c));
    });
    ASSERT_TRUE(server.ok()) << server.status();
    const int fds_baseline = testing::count_open_fds();

    StreamClient client;
    ASSERT_TRUE(client.connect_all((*server)->address(), kConnections));
    ASSERT_TRUE(testing::wait_until([&] {
      MutexLock lock(&reg.mu);
      return reg.entries.size() == kConnections;
    }));

    std::atomic<bool> stop{false};
    std::atomic<uint64_t> requested{0}, refused{0};
    std::thread migrator([&] {
      std::mt19937_64 rng(testing::test_seed());
      const auto end = std::chrono::steady_clock::now() + kDuration;
      while (std::chrono::steady_clock::now() < end) {
        for (int k = 0; k < 8; ++k) {
          std::shared_ptr<Entry> e = reg.pick(rng());
          Worker* owner = e->owner.load(std::memory_order_acquire);
          if (owner == nullptr) continue;  // moving
          const size_t target = 1 - owner->index();
          rt.post_to(owner->index(), [e, &rt, &reg, &requested, &refused, target] {
            if (e->owner.load() != Worker::current() || !e->alive) return;
            // Until `done`, the connection is the migration's: nobody may post to it.
            e->owner.store(nullptr);
            absl::Status s = e->conn->migrate(rt.worker(target), [e, &reg](bool arrived) {
              e->owner.store(Worker::current(), std::memory_order_release);
              if (arrived) reg.migrations.fetch_add(1);
            });
            if (!s.ok()) e->owner.store(Worker::current());
            (s.ok() ? requested : refused).fetch_add(1);
          });
        }
        std::this_thread::sleep_for(1ms);
      }
      stop = true;
    });
    client.run(stop, kDuration + 30s);
    migrator.join();

    size_t incomplete = 0, corrupt = 0;
    uint64_t bytes = 0;
    for (auto& c : client.conns) {
      incomplete += !(c.eof && c.received == c.sent);
      corrupt += c.mismatch;
      bytes += c.received;
    }
    EXPECT_EQ(incomplete, 0u) << "streams not echoed completely before the server's FIN";
    EXPECT_EQ(corrupt, 0u) << "streams whose echo differs from what was sent";
    EXPECT_EQ(reg.wrong_worker.load(), 0u);
    EXPECT_GE(reg.migrations.load(), kMinMigrations);
    uint64_t stale = 0;
    for (size_t w = 0; w < rt.size(); ++w) stale += rt.worker(w).stats().stale_events;
    std::printf(
        "%s: %llu migrations (%llu requested, %llu refused), %.1f MB echoed, %llu stale "
        "events dropped\n",
        testing::config_test_name({GetParam(), 0}).c_str(),
        static_cast<unsigned long long>(reg.migrations.load()),
        static_cast<unsigned long long>(requested.load()),
        static_cast<unsigned long long>(refused.load()), bytes / 1e6,
        static_cast<unsigned long long>(stale));
    client.close_all();
    EXPECT_TRUE(testing::wait_until([&] { return (*server)->stats().open == 0; }));
    EXPECT_TRUE(testing::wait_until([&] { return testing::count_open_fds() == fds_baseline; }))
        << testing::count_open_fds() << " fds open, " << fds_baseline << " at the baseline";
    server->reset();
    rt.stop();
  }
  EXPECT_EQ(testing::count_open_fds(), fds_before);
}

// Wake affinity under fire: every connection follows its wakes while its handler hands each
// chunk's count to the other worker (so streaks form and connections move by themselves, once a
// second each at most), and a migrator moves random connections by id through
// Server::migratable() every millisecond, as the rebalancer does. The two kinds of move race;
// every stream must still come back complete and in order, every handler must run on its
// connection's owner, and no fd may leak.
TEST_P(Migration, StreamsSurviveWakeAffinityMovesRacingMovesById) {
#ifdef SHARDLOOP_SANITIZED
  constexpr auto kDuration = 1500ms;
#else
  constexpr auto kDuration = 3s;
#endif
  const size_t kConnections = 100;
  const int fds_before = testing::count_open_fds();
  std::atomic<uint64_t> wrong_worker{0}, handed_over{0};
  {
    Runtime rt(GetParam().options(2));
    ASSERT_TRUE(rt.start().ok());
    auto server =
        net::Server::listen(rt, testing::loopback_any(), [&](net::Connection conn) -> Task<void> {
          conn.follow_wakes();
          for (;;) {
            auto chunk = co_await conn.read_chunk();
            if (Worker::current() != conn.worker()) wrong_worker.fetch_add(1);
            if (!chunk.ok() || chunk->empty()) break;
            rt.post_to(1 - Worker::current()->index(), [&] { handed_over.fetch_add(1); });
            if (!(co_await conn.write(*chunk)).ok()) break;
          }
          (void)co_await conn.finish();
        });
    ASSERT_TRUE(server.ok()) << server.status();
    const int fds_baseline = testing::count_open_fds();
    std::shared_ptr<MigratableSet> set = (*server)->migratable();

    StreamClient client;
    ASSERT_TRUE(client.connect_all((*server)->address(), kConnections));
    ASSERT_TRUE(testing::wait_until([&] { return (*server)->stats().open == kConnections; }));

    std::atomic<bool> stop{false};
    std::atomic<uint64_t> by_id{0};
    std::thread migrator([&] {
      std::mt19937_64 rng(testing::test_seed());
      const auto end = std::chrono::steady_clock::now() + kDuration;
      while (std::chrono::steady_clock::now() < end) {
        const size_t w = rng() % 2;
        rt.post_to(w, [&, w, pick = rng()] {
          std::vector<MigratableSet::Sample> top = set->sample_on(w, 8, {});
          if (top.empty()) return;
          const uint64_t id = top[pick % top.size()].id;
          if (set->migrate_on(w, id, rt.worker(1 - w)).ok()) by_id.fetch_add(1);
        });
        std::this_thread::sleep_for(1ms);
      }
      stop = true;
    });
    client.run(stop, kDuration + 30s);
    migrator.join();

    size_t incomplete = 0, corrupt = 0;
    for (auto& c : client.conns) {
      incomplete += !(c.eof && c.received == c.sent);
      corrupt += c.mismatch;
    }
    EXPECT_EQ(incomplete, 0u) << "streams not echoed completely before the server's FIN";
    EXPECT_EQ(corrupt, 0u) << "streams whose echo differs from what was sent";
    EXPECT_EQ(wrong_worker.load(), 0u);
    uint64_t followed = 0;
    for (size_t w = 0; w < rt.size(); ++w) followed += rt.worker(w).stats().wake_affinity_moves;
    EXPECT_GT(by_id.load(), 0u);
    if (GetParam().mode == PollMode::kAdaptive) {
      EXPECT_GT(followed, 0u) << "no move by wake affinity raced the moves by id";
    } else {
      EXPECT_EQ(followed, 0u);
    }
    std::printf("%s: %llu moves by wake affinity, %llu by id, %llu chunks handed over\n",
                testing::config_test_name({GetParam(), 0}).c_str(),
                static_cast<unsigned long long>(followed),
                static_cast<unsigned long long>(by_id.load()),
                static_cast<unsigned long long>(handed_over.load()));
    client.close_all();
    EXPECT_TRUE(testing::wait_until([&] { return (*server)->stats().open == 0; }));
    EXPECT_TRUE(testing::wait_until([&] { return testing::count_open_fds() == fds_baseline; }))
        << testing::count_open_fds() << " fds open, " << fds_baseline << " at the baseline";
    server->reset();
    rt.stop();
  }
  EXPECT_EQ(testing::count_open_fds(), fds_before);
}

// A blocking client: connect, and helpers that retry on EINTR (a timed recv is not restarted).
int connect_to(const net::Address& addr) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, addr.sockaddr_ptr(), addr.length()) != 0) return -1;
  return fd;
}

std::string recv_exactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

// Semantics of one move, driven by the connection's own task: asked while the task runs, the
// move waits for its next read; output still queued moves with it; the task resumes on the
// target; drain reaches the connection there.
TEST_P(Migration, PendingMoveStartsAtTheNextReadAndCarriesQueuedOutput) {
  Runtime rt(GetParam().options(2));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<int> arrived{-1};
  const std::string big(200 * 1024, 'q');  // below the 256 KiB high-water mark: queued, no wait
  auto server =
      net::Server::listen(rt, testing::loopback_any(), [&](net::Connection conn) -> Task<void> {
        auto go = co_await conn.read_chunk();
        if (!go.ok() || go->empty()) co_return;
        Worker* target = &rt.worker(1 - Worker::current()->index());
        // Asked while this task runs: nothing waits on the connection yet, so the move waits.
        absl::Status s = conn.migrate(*target, [&](bool ok) { arrived = ok ? 1 : 0; });
        if (!s.ok()) co_return;
        (void)co_await conn.write(big);  // the client does not read yet: most of it is queued
        auto next = co_await conn.read_chunk();  // the move happens here
        const bool moved = Worker::current() == target && conn.worker() == target;
        if (!next.ok()) co_return;
        // A named string: GCC 12 mishandles a conditional's temporaries inside co_await.
        const std::string reply = moved ? "moved" : "stuck";
        (void)co_await conn.write(reply);
        (void)co_await conn.flush();
      });
  ASSERT_TRUE(server.ok());
  int fd = connect_to((*server)->address());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::send(fd, "go", 2, MSG_NOSIGNAL), 2);
  ASSERT_TRUE(testing::wait_until([&] { return arrived.load() != -1; }));
  EXPECT_EQ(arrived.load(), 1);
  ASSERT_EQ(::send(fd, "next", 4, MSG_NOSIGNAL), 4);
  EXPECT_EQ(recv_exactly(fd, big.size()), big) << "queued output lost or reordered in the move";
  EXPECT_EQ(recv_exactly(fd, 5), "moved");
  ::close(fd);
  server->reset();
  rt.stop();
}

// A move asked for and then overtaken by a close is given up: done(false) on the owner.
TEST_P(Migration, CloseGivesUpAPendingMove) {
  Runtime rt(GetParam().options(2));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<int> outcome{-1};
  std::atomic<bool> on_owner{false};
  auto server =
      net::Server::listen(rt, testing::loopback_any(), [&](net::Connection conn) -> Task<void> {
        auto go = co_await conn.read_chunk();
        if (!go.ok()) co_return;
        Worker* owner = Worker::current();
        absl::Status s = conn.migrate(rt.worker(1 - owner->index()), [&, owner](bool ok) {
          on_owner = Worker::current() == owner;
          outcome = ok ? 1 : 0;
        });
        if (s.ok()) conn.close();
      });
  ASSERT_TRUE(server.ok());
  int fd = connect_to((*server)->address());
  ASSERT_EQ(::send(fd, "go", 2, MSG_NOSIGNAL), 2);
  ASSERT_TRUE(testing::wait_until([&] { return outcome.load() != -1; }));
  EXPECT_EQ(outcome.load(), 0);
  EXPECT_TRUE(on_owner.load());
  ::close(fd);
  server->reset();
  rt.stop();
}

// Drain reaches a connection that migrated: it joined the target worker's tracker.
TEST_P(Migration, DrainReachesAMigratedConnection) {
  Runtime rt(GetParam().options(2));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<int> arrived{-1};
  std::atomic<bool> drained_read{false};
  auto server =
      net::Server::listen(rt, testing::loopback_any(), [&](net::Connection conn) -> Task<void> {
        auto go = co_await conn.read_chunk();
        if (!go.ok()) co_return;
        (void)conn.migrate(rt.worker(1 - Worker::current()->index()),
                           [&](bool ok) { arrived = ok ? 1 : 0; });
        auto r = co_await conn.read_chunk();  // moves, then waits until the drain ends it
        drained_read = !r.ok() && conn.draining();
      });
  ASSERT_TRUE(server.ok());
  int fd = connect_to((*server)->address());
  ASSERT_EQ(::send(fd, "go", 2, MSG_NOSIGNAL), 2);
  ASSERT_TRUE(testing::wait_until([&] { return arrived.load() != -1; }));
  ASSERT_EQ(arrived.load(), 1);
  DrainReport report = rt.drain(absl::Seconds(5));
  EXPECT_EQ(report.tasks_cancelled, 0u) << "the drain did not reach the migrated connection";
  EXPECT_TRUE(drained_read.load());
  ::close(fd);
}

// Wake affinity (runtime/wake_affinity.h): a connection that follows wakes and whose handler
// hands each request to the other, idle worker moves there in the adaptive mode, with its
// tracker (a drain still reaches it), and stays put in the other modes.
TEST_P(Migration, AConnectionThatFollowsWakesMovesToTheWorkerItsHandlerWakes) {
  Runtime rt(GetParam().options(2));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<int> first_worker{-1};
  std::atomic<int> last_worker{-1};
  std::atomic<int> handed_over{0};
  std::atomic<bool> drained_read{false};
  auto server =
      net::Server::listen(rt, testing::loopback_any(), [&](net::Connection conn) -> Task<void> {
        conn.follow_wakes();
        const size_t other = 1 - Worker::current()->index();
        first_worker = static_cast<int>(Worker::current()->index());
        for (;;) {
          auto chunk = co_await conn.read_chunk();
          if (!chunk.ok() || chunk->empty()) {
            drained_read = !chunk.ok() && conn.draining();
            break;
          }
          last_worker = static_cast<int>(Worker::current()->index());
          rt.post_to(other, [&] { handed_over.fetch_add(1); });
          if (!(co_await conn.write(*chunk)).ok()) break;
        }
      });
  ASSERT_TRUE(server.ok());
  int fd = connect_to((*server)->address());
  constexpr int kRequests = 50;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(::send(fd, "x", 1, MSG_NOSIGNAL), 1);
    char c = 0;
    ASSERT_EQ(::recv(fd, &c, 1, 0), 1) << "request " << i;
    ASSERT_EQ(c, 'x');
  }
  ASSERT_TRUE(testing::wait_until([&] { return handed_over.load() == kRequests; }));
  const int first = first_worker.load();
  const uint64_t moves = rt.worker(static_cast<size_t>(first)).stats().wake_affinity_moves;
  if (GetParam().mode == PollMode::kAdaptive) {
    EXPECT_EQ(moves, 1u);
    EXPECT_EQ(last_worker.load(), 1 - first) << "the connection should serve from the other worker";
  } else {
    EXPECT_EQ(moves, 0u);
    EXPECT_EQ(last_worker.load(), first);
  }
  DrainReport report = rt.drain(absl::Seconds(5));
  EXPECT_EQ(report.tasks_cancelled, 0u) << "the drain did not reach the connection";
  EXPECT_TRUE(drained_read.load());
  ::close(fd);
}

INSTANTIATE_TEST_SUITE_P(Backends, Migration, testing::kAllConfigs, testing::config_test_name);

}  // namespace
}  // namespace shardloop
