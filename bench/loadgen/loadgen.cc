// loadgen: a closed-loop echo load generator built on shardloop.
//
// Each connection sends `--pipeline` messages of `--message_size` bytes in one write, then reads
// the echoes back, verifying every byte, and repeats until `--duration` seconds have passed.
// A request's latency runs from the write of its batch to the arrival of its last echoed byte.
//
// The summary line gives total requests, requests/s, p50/p99/p999 latency, and CPU per request:
// this process's, and the server's when `--server_pid` is given (read from /proc/PID/stat over
// the same window). `--json FILE` writes the same figures as JSON.
//
// Try it:  ./echo_server --port 7000 &  ./loadgen --port 7000 --connections 100 --duration 3
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/common/cpu_time.h"
#include "bench/loadgen/latency_histogram.h"
#include "examples/common/cli.h"
#include "gflags/gflags.h"
#include "net/dialer.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"

DEFINE_string(host, "127.0.0.1", "server address");
DEFINE_int32(port, 7000, "server port");
DEFINE_int32(connections, 100, "concurrent connections");
DEFINE_double(duration, 5, "seconds of load after all connections are up");
DEFINE_int32(pipeline, 1, "requests in flight per connection");
DEFINE_int32(message_size, 64, "bytes per request");
DEFINE_int32(workers, 1, "load generator worker threads");
DEFINE_string(backend, "auto", "poller backend of the load generator");
DEFINE_int32(server_pid, 0, "if set, also report this process's CPU per request");
DEFINE_string(json, "", "write the results as JSON to this file");
DEFINE_string(label, "", "label printed with the results");

using namespace shardloop;
using Clock = std::chrono::steady_clock;

namespace {

struct WorkerResult {
  bench::LatencyHistogram latency;
  uint64_t requests = 0;
  uint64_t errors = 0;
  uint64_t mismatches = 0;
};

struct Shared {
  net::Address address;
  std::atomic<int> connected{0};
  std::atomic<int> failed{0};
  std::atomic<bool> go{false};
  Clock::time_point stop_at;
  std::vector<WorkerResult> results;  // one per worker; element i touched only by worker i
};

char pattern_byte(size_t i) { return static_cast<char>('a' + (i * 7 + i / 251) % 26); }

Task<void> drive(Shared* shared, size_t worker) {
  WorkerResult& out = shared->results[worker];
  auto conn = co_await net::dial(shared->address);
  if (!conn.ok()) {
    if (shared->failed.fetch_add(1) == 0) {
      std::fprintf(stderr, "loadgen: connect failed: %s\n", conn.status().ToString().c_str());
    }
    co_return;
  }
  shared->connected.fetch_add(1);
  while (!shared->go.load(std::memory_order_acquire))
    co_await sleep_for(std::chrono::milliseconds(1));

  const size_t size = static_cast<size_t>(FLAGS_message_size);
  const size_t depth = static_cast<size_t>(FLAGS_pipeline);
  std::vector<char> batch(size * depth);
  for (size_t i = 0; i < batch.size(); ++i) batch[i] = pattern_byte(i % size);
  std::vector<char> in(std::max<size_t>(batch.size(), 64 * 1024));

  while (Clock::now() < shared->stop_at) {
    const auto sent_at = Clock::now();
    if (!(co_await conn->write_all(absl::MakeConstSpan(batch))).ok()) {
      ++out.errors;
      break;
    }
    size_t received = 0, completed = 0;
    while (received < batch.size()) {
      auto n = co_await conn->read(absl::MakeSpan(in.data(), batch.size() - received));
      if (!n.ok() || *n == 0) {
        ++out.errors;
        co_return;
      }
      for (size_t i = 0; i < *n; ++i) {
        if (in[i] != pattern_byte((received + i) % size)) ++out.mismatches;
      }
      received += *n;
      const uint64_t ns = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - sent_at).count());
      for (; completed < received / size; ++completed) out.latency.record(ns);
    }
    out.requests += depth;
  }
  conn->close();
}

}  // namespace

int main(int argc, char** argv) {
  cli::accept_dashed_flags(argc, argv);
  gflags::SetUsageMessage("closed-loop echo load generator");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_connections < 1 || FLAGS_pipeline < 1 || FLAGS_message_size < 1 || FLAGS_workers < 1 ||
      FLAGS_duration <= 0) {
    std::fprintf(
        stderr,
        "loadgen: connections, pipeline, message_size, workers and duration must be positive\n");
    return 2;
  }
  auto backend = parse_backend(FLAGS_backend);
  auto address = net::Address::from_host_port(FLAGS_host, static_cast<uint16_t>(FLAGS_port));
  if (!backend.ok() || !address.ok()) {
    std::fprintf(stderr, "loadgen: %s\n",
                 (!backend.ok() ? backend.status() : address.status()).ToString().c_str());
    return 2;
  }

  Shared shared;
  shared.address = *address;
  shared.results.resize(static_cast<size_t>(FLAGS_workers));
  Runtime rt({.workers = static_cast<size_t>(FLAGS_workers), .backend = *backend});
  if (auto s = rt.start(); !s.ok()) {
    std::fprintf(stderr, "loadgen: %s\n", s.ToString().c_str());
    return 1;
  }
  for (int c = 0; c < FLAGS_connections; ++c) {
    size_t w = static_cast<size_t>(c) % rt.size();
    rt.spawn_on(w, [&shared, w] { return drive(&shared, w); });
  }
  // Connect everything first, so the measured window is steady-state load only.
  const auto connect_deadline = Clock::now() + std::chrono::seconds(30);
  while (shared.connected.load() + shared.failed.load() < FLAGS_connections &&
         Clock::now() < connect_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (shared.failed.load() > 0 || shared.connected.load() < FLAGS_connections) {
    std::fprintf(stderr, "loadgen: only %d of %d connections established\n",
                 shared.connected.load(), FLAGS_connections);
    rt.stop();
    return 1;
  }

  const auto intended = std::chrono::duration<double>(FLAGS_duration);
  const double self_cpu0 = bench::self_cpu_seconds();
  const auto server_cpu0 =
      FLAGS_server_pid ? bench::process_cpu_seconds(FLAGS_server_pid) : std::nullopt;
  const auto start = Clock::now();
  shared.stop_at = start + std::chrono::duration_cast<Clock::duration>(intended);
  shared.go.store(true, std::memory_order_release);
  // Every connection finishes its batch in flight, then ends; give stragglers a bounded grace.
  while (rt.live_tasks() > 0 && Clock::now() < shared.stop_at + std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const double self_cpu = bench::self_cpu_seconds() - self_cpu0;
  const auto server_cpu1 =
      FLAGS_server_pid ? bench::process_cpu_seconds(FLAGS_server_pid) : std::nullopt;
  rt.stop();

  WorkerResult total;
  for (auto& r : shared.results) {
    total.latency.merge(r.latency);
    total.requests += r.requests;
    total.errors += r.errors;
    total.mismatches += r.mismatches;
  }
  const double rps = static_cast<double>(total.requests) / wall;
  const double per_req = total.requests ? 1e6 / static_cast<double>(total.requests) : 0;
  std::string server_cpu_text = "n/a";
  double server_us = -1;
  if (server_cpu0 && server_cpu1) {
    server_us = (*server_cpu1 - *server_cpu0) * per_req;
    server_cpu_text = absl::StrFormat("%.2f", server_us);
  }
  if (wall > FLAGS_duration * 1.2 + 0.5) {
    std::fprintf(stderr,
                 "loadgen: warning: ran %.2f s for an intended %.2f s; the rate is suspect\n", wall,
                 FLAGS_duration);
  }
  std::printf(
      "%s%sconnections=%d pipeline=%d size=%d wall=%.2fs requests=%llu rps=%.0f "
      "p50=%.1fus p99=%.1fus p999=%.1fus server_cpu_us_per_req=%s loadgen_cpu_us_per_req=%.2f "
      "errors=%llu mismatches=%llu\n",
      FLAGS_label.c_str(), FLAGS_label.empty() ? "" : ": ", FLAGS_connections, FLAGS_pipeline,
      FLAGS_message_size, wall, static_cast<unsigned long long>(total.requests), rps,
      total.latency.percentile(0.50) / 1e3, total.latency.percentile(0.99) / 1e3,
      total.latency.percentile(0.999) / 1e3, server_cpu_text.c_str(), self_cpu * per_req,
      static_cast<unsigned long long>(total.errors),
      static_cast<unsigned long long>(total.mismatches));
  if (!FLAGS_json.empty()) {
    std::ofstream json(FLAGS_json);
    json << absl::StrFormat(
        "{\"label\":\"%s\",\"connections\":%d,\"pipeline\":%d,\"message_size\":%d,"
        "\"intended_s\":%.3f,\"wall_s\":%.3f,\"requests\":%d,\"rps\":%.1f,\"p50_us\":%.2f,"
        "\"p99_us\":%.2f,\"p999_us\":%.2f,\"server_cpu_us_per_req\":%.3f,"
        "\"loadgen_cpu_us_per_req\":%.3f,\"errors\":%d,\"mismatches\":%d}\n",
        FLAGS_label, FLAGS_connections, FLAGS_pipeline, FLAGS_message_size, FLAGS_duration, wall,
        total.requests, rps, total.latency.percentile(0.50) / 1e3,
        total.latency.percentile(0.99) / 1e3, total.latency.percentile(0.999) / 1e3, server_us,
        self_cpu * per_req, total.errors, total.mismatches);
  }
  return total.errors == 0 && total.mismatches == 0 ? 0 : 1;
}
