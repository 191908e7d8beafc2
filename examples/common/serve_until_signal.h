// serve_until_signal(): the main loop every example server shares. Starts a Runtime, listens,
// prints "NAME: listening on ADDRESS with N BACKEND workers" (the benchmark scripts read it),
// waits for SIGINT or SIGTERM, drains, and prints what the drain did. Returns the exit code.
#pragma once

#include <signal.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "net/server.h"
#include "runtime/runtime.h"
#include "scheduler/rebalancer.h"

namespace shardloop::examples {

// Makes the connection handler once the runtime has started, for services that need its
// workers (a sharded store, say). What the handler holds is destroyed after the runtime stops.
using HandlerFactory = std::function<net::ConnectionHandler(Runtime&)>;

// `rebalance`: when positive, a scheduler::Rebalancer moves connections between workers by measured
// load at that interval (the handler must be migratable: see Connection::migrate).
inline int serve_until_signal(const char* name, const RuntimeOptions& runtime_options,
                              const net::Address& address, const HandlerFactory& make_handler,
                              const net::ServerOptions& server_options, absl::Duration drain,
                              absl::Duration rebalance = absl::ZeroDuration()) {
  // Block the stop signals before any worker starts, so workers inherit the mask and only
  // sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Runtime rt(runtime_options);
  if (auto s = rt.start(); !s.ok()) {
    std::fprintf(stderr, "%s: cannot start runtime: %s\n", name, s.ToString().c_str());
    return 1;
  }
  auto server = net::Server::listen(rt, address, make_handler(rt), server_options);
  if (!server.ok()) {
    std::fprintf(stderr, "%s: %s\n", name, server.status().ToString().c_str());
    return 1;
  }
  std::printf("%s: listening on %s with %zu %s workers\n", name,
              (*server)->address().to_string().c_str(), rt.size(),
              std::string(backend_name(rt.worker(0).backend())).c_str());
  std::fflush(stdout);
  std::unique_ptr<scheduler::Rebalancer> rebalancer;
  if (rebalance > absl::ZeroDuration()) {
    rebalancer = std::make_unique<scheduler::Rebalancer>(
        rt, (*server)->migratable(), scheduler::RebalancerOptions{.interval = rebalance});
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  if (rebalancer != nullptr) {
    scheduler::RebalancerStats rs = rebalancer->stats();
    std::printf("%s: rebalancer: %llu rounds, %llu moves\n", name,
                static_cast<unsigned long long>(rs.rounds),
                static_cast<unsigned long long>(rs.moves_started));
    rebalancer.reset();  // before the runtime stops
  }
  DrainReport report = rt.drain(drain);
  net::ServerStats stats = (*server)->stats();
  uint64_t accepted = 0;
  for (uint64_t a : stats.accepted) accepted += a;
  std::printf("%s: drained in %s: %llu connections accepted, %zu tasks cancelled\n", name,
              absl::FormatDuration(report.elapsed).c_str(),
              static_cast<unsigned long long>(accepted), report.tasks_cancelled);
  server->reset();
  return 0;
}

inline int serve_until_signal(const char* name, const RuntimeOptions& runtime_options,
                              const net::Address& address, net::ConnectionHandler handler,
                              const net::ServerOptions& server_options, absl::Duration drain,
                              absl::Duration rebalance = absl::ZeroDuration()) {
  return serve_until_signal(
      name, runtime_options, address, [&handler](Runtime&) { return std::move(handler); },
      server_options, drain, rebalance);
}

}  // namespace shardloop::examples
