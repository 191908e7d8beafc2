// migration_bench: what one live connection migration costs, per backend.
//
// Two workers; CONNECTIONS idle TCP connections over loopback, each with an echo task waiting
// to read it. A controlling thread moves one connection at a time to the other worker and waits
// for it to arrive (Connection::migrate's `done`), ROUNDS times, then checks that every
// connection still echoes. Prints the median, p99 and mean time from the request (posted to the
// owner) to the arrival callback on the target, which includes waking the target if it was
// parked; and the owner's and target's CPU time per migration (getrusage per thread is not
// available, so the process's CPU over the whole loop divided by the moves).
//
//   migration_bench --backend io_uring --rounds 20000
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "examples/common/cli.h"
#include "gflags/gflags.h"
#include "net/dialer.h"
#include "net/server.h"
#include "runtime/runtime.h"

DEFINE_string(backend, "epoll", "poller backend: epoll, io_uring or auto");
DEFINE_int32(connections, 100, "idle connections to pick from");
DEFINE_int32(rounds, 20000, "migrations to time");

using namespace shardloop;

namespace {

// Touched only on the connection's owner, except `owner`, which the controller reads (acquire)
// to know where to post; it is written on arrival (release).
struct Slot {
  std::atomic<Worker*> owner{nullptr};
  net::Connection* conn = nullptr;
};

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  cli::accept_dashed_flags(argc, argv);
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  auto backend = parse_backend(FLAGS_backend);
  if (!backend.ok()) {
    std::fprintf(stderr, "migration_bench: %s\n", backend.status().ToString().c_str());
    return 2;
  }
  Runtime rt({.workers = 2, .pin_cpus = true, .backend = *backend});
  if (auto s = rt.start(); !s.ok()) {
    std::fprintf(stderr, "migration_bench: %s\n", s.ToString().c_str());
    return 1;
  }
  const size_t n = static_cast<size_t>(FLAGS_connections);
  std::vector<Slot> slots(n);
  std::atomic<size_t> registered{0};
  auto server = net::Server::listen(
      rt, *net::Address::parse("127.0.0.1:0"), [&](net::Connection conn) -> Task<void> {
        Slot& slot = slots[registered.fetch_add(1)];
        slot.conn = &conn;
        slot.owner.store(Worker::current(), std::memory_order_release);
        for (;;) {
          auto chunk = co_await conn.read_chunk();
          if (!chunk.ok() || chunk->empty()) break;
          if (!(co_await conn.write(*chunk)).ok()) break;
        }
      });
  if (!server.ok()) return 1;
  std::vector<int> clients;
  for (size_t i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(fd, (*server)->address().sockaddr_ptr(), (*server)->address().length()) != 0) {
      std::perror("connect");
      return 1;
    }
    clients.push_back(fd);
  }
  while (registered.load() < n) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  std::vector<double> us;
  us.reserve(static_cast<size_t>(FLAGS_rounds));
  const double cpu_start = cpu_seconds();
  const auto wall_start = std::chrono::steady_clock::now();
  for (int r = 0; r < FLAGS_rounds; ++r) {
    Slot& slot = slots[static_cast<size_t>(r) % n];
    Worker* owner = slot.owner.load(std::memory_order_acquire);
    Worker* target = &rt.worker(1 - owner->index());
    std::promise<bool> arrived;
    const auto t0 = std::chrono::steady_clock::now();
    rt.post_to(owner->index(), [&] {
      absl::Status s = slot.conn->migrate(*target, [&](bool ok) {
        slot.owner.store(Worker::current(), std::memory_order_release);
        arrived.set_value(ok);
      });
      if (!s.ok()) arrived.set_value(false);
    });
    if (!arrived.get_future().get()) {
      std::fprintf(stderr, "migration_bench: a migration failed\n");
      return 1;
    }
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  const double cpu = cpu_seconds() - cpu_start;

  // Every connection still echoes after its moves.
  size_t bad = 0;
  for (int fd : clients) {
    char buf[5];
    if (::send(fd, "ping", 4, MSG_NOSIGNAL) != 4 || ::recv(fd, buf, 4, MSG_WAITALL) != 4) ++bad;
    ::close(fd);
  }
  std::sort(us.begin(), us.end());
  double mean = 0;
  for (double v : us) mean += v;
  mean /= static_cast<double>(us.size());
  std::printf(
      "%s: %zu migrations of %zu connections in %.2f s: median %.1f us, p99 %.1f us, "
      "mean %.1f us; process CPU %.1f us per migration; %zu connections broken after\n",
      std::string(backend_name(rt.worker(0).backend())).c_str(), us.size(), n, wall,
      us[us.size() / 2], us[us.size() * 99 / 100], mean, cpu * 1e6 / us.size(), bad);
  server->reset();
  rt.stop();
  return bad == 0 ? 0 : 1;
}
