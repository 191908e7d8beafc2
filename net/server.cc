#include "net/server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "net/connection_tracker.h"
#include "net/cpu_steering.h"
#include "runtime/errno_status.h"
#include "runtime/log.h"
#include "runtime/sleep.h"

namespace shardloop::net {

// One worker's listening socket. `closing` and `listener` are owner-only (the shard's worker);
// the counters are written by the owner and read by stats() from any thread.
// Relaxed atomics: a limit and statistics, not synchronisation points.
struct Server::Counters {
  std::atomic<uint64_t> open{0};  // connections whose handler is still running
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> drained{0};
};

struct Server::Shard {
  std::shared_ptr<Server::Counters> counters;
  size_t worker = 0;
  int fd = -1;  // the raw socket until the accept loop adopts it
  std::shared_ptr<const ConnectionHandler> handler;
  bool closing = false;
  AsyncFd* listener = nullptr;  // owned by the accept loop's frame
  ConnectionTracker connections;
  ConnectionOptions connection_options;
  size_t max_connections = 0;
  std::string refusal_message;
  bool draining = false;
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> accept_errors{0};

  // A socket never adopted (the runtime stopped first) is closed by the last owner of the shard.
  ~Shard() {
    if (fd >= 0) ::close(fd);
  }
};

namespace {

// Accepting this many in a row before yielding lets handlers of fresh connections run (and the
// worker poll) during a connection storm.
constexpr int kAcceptBatch = 64;
constexpr auto kMinBackoff = std::chrono::milliseconds(50);
constexpr auto kMaxBackoff = std::chrono::milliseconds(500);

RateLimiter g_accept_error_log{std::chrono::seconds(1)};

// Refuses an accepted connection: `message` (if any), then close. No waiting: the message goes
// into the new socket's empty send buffer at once. After it, FIN, and what the client already
// sent is read and dropped, since closing with unread bytes makes the kernel answer with an
// RST, which can destroy the message before the client reads it. Bytes that arrive later can
// still cause that; holding refused sockets open to linger would defeat the limit.
void refuse(int fd, const std::string& message) {
  if (!message.empty()) {
    (void)::send(fd, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(fd, SHUT_WR);
    char discard[4096];
    for (int i = 0; i < 16 && ::recv(fd, discard, sizeof(discard), MSG_DONTWAIT) > 0; ++i) {
    }
  }
  ::close(fd);
}

bool is_resource_exhaustion(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

absl::StatusOr<int> open_listener(const Address& address, int backlog) {
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_status(errno, "socket");
  int one = 1;
  auto fail = [fd](const char* what) {
    int err = errno;
    ::close(fd);
    return errno_status(err, what);
  };
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    return fail("setsockopt(SO_REUSEADDR)");
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    return fail("setsockopt(SO_REUSEPORT)");
  }
  if (address.family() == AF_INET6 &&
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
    return fail("setsockopt(IPV6_V6ONLY)");
  }
  if (::bind(fd, address.sockaddr_ptr(), address.length()) != 0) {
    int err = errno;
    ::close(fd);
    return errno_status(err, absl::StrCat("bind ", address.to_string()));
  }
  if (::listen(fd, backlog) != 0) return fail("listen");
  return fd;
}

}  // namespace

// Runs one connection's handler and keeps the server's books on it.
Task<void> run_connection(std::shared_ptr<Server::Shard> shard, Connection conn) {
  shard->connections.add(conn);
  if (shard->draining) conn.drain();
  co_await (*shard->handler)(std::move(conn));
  shard->counters->open.fetch_sub(1, std::memory_order_relaxed);
}

Task<void> accept_loop(std::shared_ptr<Server::Shard> shard) {
  if (shard->closing) co_return;  // ~Shard closes the socket
  // adopt() owns the fd from here on, and closes it itself if registration fails.
  auto adopted = AsyncFd::adopt(std::exchange(shard->fd, -1), AsyncFd::Kind::kListener);
  if (!adopted.ok()) {
    log(LogLevel::kError, "worker %d: cannot register listener: %s", shard->worker,
        adopted.status().ToString());
    co_return;
  }
  AsyncFd::Ptr listener = std::move(*adopted);
  shard->listener = listener.get();
  auto backoff = std::chrono::milliseconds(0);
  int batch = 0;

  while (!shard->closing) {
    AsyncFd::AcceptResult accepted = co_await listener->accept();
    if (accepted.ok()) {
      backoff = std::chrono::milliseconds(0);
      Server::Counters& counters = *shard->counters;
      if (shard->max_connections != 0 &&
          counters.open.load(std::memory_order_relaxed) >= shard->max_connections) {
        counters.refused.fetch_add(1, std::memory_order_relaxed);
        refuse(accepted.fd, shard->refusal_message);
        continue;
      }
      configure_tcp_socket(accepted.fd);
      auto conn = AsyncFd::adopt(accepted.fd, AsyncFd::Kind::kStream);
      if (conn.ok()) {
        shard->accepted.fetch_add(1, std::memory_order_relaxed);
        counters.open.fetch_add(1, std::memory_order_relaxed);
        spawn(run_connection(shard, Connection(std::move(*conn), shard->connection_options)));
      }
      if (++batch == kAcceptBatch) {
        batch = 0;
        co_await yield_now();
      }
      continue;
    }
    batch = 0;
    const int err = accepted.error;
    if (shard->closing || err == ECANCELED) break;
    if (is_resource_exhaustion(err)) {
      shard->accept_errors.fetch_add(1, std::memory_order_relaxed);
      backoff = std::min(kMaxBackoff, std::max(kMinBackoff, backoff * 2));
      uint64_t suppressed = 0;
      if (g_accept_error_log.allow(&suppressed)) {
        log(LogLevel::kWarning,
            "worker %d: accept: %s; pausing accepts for %d ms (%d similar messages suppressed)",
            shard->worker, errno_description(err), backoff.count(), suppressed);
      }
      co_await sleep_for(backoff);
    } else if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM) {
      continue;  // that one connection failed; the listener is fine
    } else {
      log(LogLevel::kError, "worker %d: accept failed: %s; listener stopped", shard->worker,
          errno_description(err));
      break;
    }
  }
  shard->listener = nullptr;
}

absl::StatusOr<std::unique_ptr<Server>> Server::listen(Runtime& runtime, const Address& address,
                                                       ConnectionHandler handler,
                                                       ServerOptions options) {
  if (!runtime.running())
    return absl::FailedPreconditionError("Server::listen: runtime not started");
  auto shared_handler = std::make_shared<const ConnectionHandler>(std::move(handler));
  std::unique_ptr<Server> server(new Server(runtime, address));
  server->counters_ = std::make_shared<Counters>();
  // Bind every socket before starting any accept loop, so a bind failure leaves nothing running.
  Address bound = address;
  for (size_t w = 0; w < runtime.size(); ++w) {
    auto fd = open_listener(bound, options.backlog);
    if (!fd.ok()) {
      return fd.status();  // the shards made so far close their sockets
    }
    if (w == 0 && bound.port() == 0) {
      // Port 0: the first socket picks the port and every other shard joins it.
      sockaddr_storage ss{};
      socklen_t len = sizeof(ss);
      ::getsockname(*fd, reinterpret_cast<sockaddr*>(&ss), &len);
      bound = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    }
    auto shard = std::make_shared<Shard>();
    shard->counters = server->counters_;
    shard->connection_options = options.connection;
    shard->max_connections = options.max_connections;
    shard->refusal_message = options.refusal_message;
    shard->worker = w;
    shard->fd = *fd;
    shard->handler = shared_handler;
    server->shards_.push_back(std::move(shard));
  }
  server->address_ = bound;
  // A connection that migrates joins its target worker's shard (Connection::migrate).
  auto group = std::make_shared<ConnectionTracker::Group>();
  for (auto& shard : server->shards_) {
    group->push_back(std::shared_ptr<ConnectionTracker>(shard, &shard->connections));
  }
  for (auto& shard : server->shards_) shard->connections.set_group(group);
  server->trackers_ = std::move(group);
  if (options.steering == Steering::kCpu) {
    std::vector<int> cpus;
    for (size_t w = 0; w < runtime.size(); ++w) cpus.push_back(runtime.worker(w).cpu());
    for (size_t w = 0; w < runtime.size(); ++w) set_incoming_cpu(server->shards_[w]->fd, cpus[w]);
    if (absl::Status s = attach_cpu_steering(server->shards_[0]->fd, cpus); s.ok()) {
      server->steering_ = Steering::kCpu;
      if (!runtime.options().pin_cpus) {
        log(LogLevel::kWarning,
            "steering=cpu on unpinned workers: connections follow CPU "
            "numbers, not the CPUs the workers happen to run on");
      }
    } else {
      log(LogLevel::kWarning, "steering=cpu refused by the kernel (%s); using hash steering",
          s.ToString());
    }
  }
  for (auto& shard : server->shards_) {
    runtime.spawn_on(shard->worker, [shard] { return accept_loop(shard); });
  }
  Server* raw = server.get();
  server->drain_hook_ = runtime.add_drain_hook([raw] { raw->drain(); });
  return server;
}

Server::~Server() {
  runtime_.remove_drain_hook(drain_hook_);
  close();
}

void Server::close() {
  if (closed_.exchange(true, std::memory_order_acq_rel)) return;
  if (!runtime_.running()) return;  // the workers' teardown closed (or will close) the sockets
  for (auto& shard : shards_) {
    runtime_.post_to(shard->worker, [shard] {
      shard->closing = true;
      // Closing wakes the accept loop (its readiness waiter is cancelled) and it exits.
      if (shard->listener != nullptr) shard->listener->close();
    });
  }
}

void Server::drain() {
  close();
  if (!runtime_.running()) return;
  for (auto& shard : shards_) {
    runtime_.post_to(shard->worker, [shard] {
      shard->draining = true;
      size_t n = shard->connections.drain_all();
      shard->counters->drained.fetch_add(n, std::memory_order_relaxed);
    });
  }
}

namespace {

// The shards' trackers, held weakly: a shard that has ended has no connections to offer.
class ServerConnections final : public MigratableSet {
 public:
  explicit ServerConnections(std::shared_ptr<const ConnectionTracker::Group> trackers)
      : trackers_(std::move(trackers)) {}

  size_t count_on(size_t w) override {
    auto tracker = ConnectionTracker::on_worker(*trackers_, w);
    return tracker != nullptr ? tracker->size() : 0;
  }
  std::vector<Sample> sample_on(size_t w, size_t top, absl::Span<const uint64_t> also) override {
    auto tracker = ConnectionTracker::on_worker(*trackers_, w);
    return tracker != nullptr ? tracker->sample(top, also) : std::vector<Sample>{};
  }
  absl::Status migrate_on(size_t w, uint64_t id, Worker& target) override {
    auto tracker = ConnectionTracker::on_worker(*trackers_, w);
    if (tracker == nullptr) return absl::NotFoundError("no server shard on that worker");
    return tracker->migrate(id, target);
  }

 private:
  const std::shared_ptr<const ConnectionTracker::Group> trackers_;
};

}  // namespace

std::shared_ptr<MigratableSet> Server::migratable() const {
  return std::make_shared<ServerConnections>(trackers_);
}

ServerStats Server::stats() const {
  ServerStats s;
  for (const auto& shard : shards_) {
    s.accepted.push_back(shard->accepted.load(std::memory_order_relaxed));
    s.accept_errors += shard->accept_errors.load(std::memory_order_relaxed);
  }
  s.refused = counters_->refused.load(std::memory_order_relaxed);
  s.open = counters_->open.load(std::memory_order_relaxed);
  s.drained = counters_->drained.load(std::memory_order_relaxed);
  return s;
}

}  // namespace shardloop::net
