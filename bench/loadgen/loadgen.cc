// loadgen: a load generator built on shardloop, for echo, HTTP/1.1, RESP (redis) and RPC servers.
//
// --mode picks the protocol (bench/loadgen/client_protocol.h; one small file per mode):
//   echo  --message_size bytes, echoed back and verified byte for byte (the default)
//   http  GET / HTTP/1.1, keep-alive, pipelined; every answer must be 200
//   resp  SET/GET/PING (--resp_command mix|set|get|ping); every reply is validated
//   rpc   SLRP echo requests with ids (examples/rpc); ids and payloads are validated
//
// Two ways to load, both over --connections spread round-robin over --workers:
// - closed loop (--rate 0, the default): each connection sends --pipeline requests in one write,
//   reads every answer, and repeats until --duration has passed. A request's latency runs from
//   the write of its batch to the arrival of its answer.
// - open loop (--rate N): N requests/s in total, each connection sending on its own fixed
//   schedule (N / connections per second, the connections' schedules staggered), with at most
//   --pipeline requests in flight. A request's latency runs from its *intended* send time, so a
//   server that stalls is charged for the requests that should have been sent meanwhile instead
//   of hiding them (coordinated omission).
//
// The summary line gives total requests, requests/s, p50/p99/p999 latency, and CPU per request:
// this process's, and the server's when --server_pid is given (read from /proc/PID/stat over
// the same window). --json FILE writes the same figures as JSON. Wrong answers count as
// mismatches, connection failures and broken streams as errors; either makes the exit code 1.
// In echo mode without --rate the output has exactly the fields it always had (the benchmark
// scripts parse them); other runs add mode= and rate= (JSON "mode", "rate").
//
// Try it:  ./echo_server --port 7000 &  ./loadgen --port 7000 --connections 100 --duration 3
//          ./http_server --port 8080 &  ./loadgen --mode http --port 8080 --rate 20000
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/common/cpu_time.h"
#include "bench/loadgen/client_protocol.h"
#include "bench/loadgen/latency_histogram.h"
#include "examples/common/cli.h"
#include "examples/common/wakeup.h"
#include "gflags/gflags.h"
#include "net/dialer.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"

DEFINE_string(host, "127.0.0.1", "server address");
DEFINE_int32(port, 7000, "server port");
DEFINE_string(mode, "echo", "protocol: echo, http, resp or rpc");
DEFINE_int32(connections, 100, "concurrent connections");
DEFINE_double(duration, 5, "seconds of load after all connections are up");
DEFINE_int32(pipeline, 1, "requests in flight per connection (closed loop: per batch)");
DEFINE_double(rate, 0, "open loop: total requests/s over all connections (0: closed loop)");
DEFINE_int32(message_size, 64, "bytes per request (echo, rpc) or per SET value (resp)");
DEFINE_string(resp_command, "mix", "resp mode: mix (SET, GET, PING in turn), set, get or ping");
DEFINE_int32(workers, 1, "load generator worker threads");
DEFINE_string(backend, "auto", "poller backend of the load generator");
DEFINE_int32(server_pid, 0, "if set, also report this process's CPU per request");
DEFINE_string(json, "", "write the results as JSON to this file");
DEFINE_string(label, "", "label printed with the results");

using namespace shardloop;
using Clock = std::chrono::steady_clock;

namespace {

// After the load window, connections finish the requests they have in flight; one that is still
// busy this long after is counted as an error.
constexpr auto kGrace = std::chrono::seconds(10);

struct WorkerResult {
  bench::LatencyHistogram latency;
  uint64_t requests = 0;
  uint64_t errors = 0;
  uint64_t mismatches = 0;
  uint64_t finished = 0;  // connections whose driver ran to its end
};

// Thread-safety: `connected`, `failed`, `go` and `broken_reported` are atomics any worker may
// touch. `start`, `stop_at` are written by main before the release store of `go` and read by
// workers only after its acquire load. results[i] is touched only by worker i until main reads
// it after rt.stop() has joined the workers. The rest is set before the runtime starts.
struct Shared {
  net::Address address;
  bench::ProtocolFactory make_protocol;
  size_t connections = 0;
  size_t depth = 1;
  double rate = 0;
  std::atomic<int> connected{0};
  std::atomic<int> failed{0};
  std::atomic<bool> go{false};
  std::atomic<bool> broken_reported{false};
  Clock::time_point start;
  Clock::time_point stop_at;
  std::vector<WorkerResult> results;
};

// The requests of one connection in flight, by seq: their intended send times, and which have
// been answered (answers may come out of order). Owner worker only.
class InFlight {
 public:
  uint64_t next_seq() const { return base_ + slots_.size(); }
  size_t outstanding() const { return outstanding_; }
  void push(Clock::time_point intended) {
    slots_.push_back({intended, false});
    ++outstanding_;
  }
  // Records the answer to `seq` at `now`; false when `seq` is not in flight.
  bool answer(uint64_t seq, Clock::time_point now, bench::LatencyHistogram* latency) {
    if (seq < base_ || seq - base_ >= slots_.size()) return false;
    Slot& slot = slots_[seq - base_];
    if (slot.answered) return false;
    slot.answered = true;
    --outstanding_;
    latency->record(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - slot.intended).count()));
    while (!slots_.empty() && slots_.front().answered) {
      slots_.pop_front();
      ++base_;
    }
    return true;
  }

 private:
  struct Slot {
    Clock::time_point intended;
    bool answered;
  };
  std::deque<Slot> slots_;
  uint64_t base_ = 0;  // seq of slots_.front()
  size_t outstanding_ = 0;
};

// One connection: its protocol, what is in flight, the partial answer received so far. Shared by
// the connection's coroutines, all on its worker (owner worker only).
struct Conn {
  Conn(net::Connection c, std::unique_ptr<bench::ClientProtocol> p, Shared* s, WorkerResult* o)
      : conn(std::move(c)), protocol(std::move(p)), shared(s), out(o) {}

  // Hands received bytes to the protocol: records each answer and returns how many there were,
  // or -1 when the stream is broken (counted as an error, reported once per run).
  int64_t consume(std::string_view chunk) {
    const bool from_chunk = in.empty();  // the usual case: no partial answer waits, no copy
    if (!from_chunk) in.append(chunk.data(), chunk.size());
    const std::string_view data = from_chunk ? chunk : std::string_view(in);
    const auto now = Clock::now();
    int64_t answers = 0;
    bool stray = false;
    bench::ParseOutcome r = protocol->parse(data, [&](uint64_t seq) {
      if (in_flight.answer(seq, now, &out->latency)) {
        ++answers;
      } else {
        stray = true;
      }
    });
    out->mismatches += r.mismatches;
    if (stray && r.broken.empty()) r.broken = "an answer to a request that is not in flight";
    if (!r.broken.empty()) {
      ++out->errors;
      if (!shared->broken_reported.exchange(true)) {
        std::fprintf(stderr, "loadgen: %s\n", r.broken.c_str());
      }
      return -1;
    }
    if (from_chunk) {
      in.assign(data.substr(r.consumed));
    } else {
      in.erase(0, r.consumed);
    }
    return answers;
  }

  net::Connection conn;
  std::unique_ptr<bench::ClientProtocol> protocol;
  Shared* shared;
  WorkerResult* out;
  InFlight in_flight;
  std::string in;
  // Open loop only.
  bool failed = false;
  bool sender_done = false;
  examples::Wakeup sender_wake;    // a request was answered, or the receiver gave up
  examples::Wakeup receiver_wake;  // a request was sent, or the sender finished
};

// Closed loop: a batch of `depth` requests, all their answers, repeat.
Task<void> closed_loop(Conn& c) {
  Shared* shared = c.shared;
  std::string batch;
  while (Clock::now() < shared->stop_at) {
    const auto sent_at = Clock::now();
    batch.clear();
    for (size_t i = 0; i < shared->depth; ++i) {
      c.protocol->append_request(c.in_flight.next_seq(), &batch);
      c.in_flight.push(sent_at);
    }
    if (!(co_await c.conn.write_all(batch)).ok()) {
      ++c.out->errors;
      co_return;
    }
    while (c.in_flight.outstanding() > 0) {
      auto chunk = co_await c.conn.read_chunk();
      if (!chunk.ok() || chunk->empty()) {
        ++c.out->errors;
        co_return;
      }
      if (c.consume({chunk->data(), chunk->size()}) < 0) co_return;
    }
    c.out->requests += shared->depth;
  }
  c.conn.close();
}

// Open loop, sending half: request k of this connection is due at first + k * interval. Due
// requests go out together, at most `depth` in flight; one that could not go out on time keeps
// its intended time, so its latency includes the wait.
Task<void> send_on_schedule(std::shared_ptr<Conn> c, Clock::time_point first,
                            Clock::duration interval) {
  const Clock::time_point stop_at = c->shared->stop_at;
  const size_t depth = c->shared->depth;
  Clock::time_point next = first;
  std::string out;
  while (!c->failed && next < stop_at) {
    if (c->in_flight.outstanding() >= depth) {
      co_await c->sender_wake.wait();
      continue;
    }
    const auto now = Clock::now();
    if (next > now) {
      co_await sleep_until(next);
      continue;
    }
    out.clear();
    while (next <= now && next < stop_at && c->in_flight.outstanding() < depth) {
      c->protocol->append_request(c->in_flight.next_seq(), &out);
      c->in_flight.push(next);
      next += interval;
    }
    if (!(co_await c->conn.write(out)).ok()) {
      if (!c->failed) ++c->out->errors;
      c->failed = true;
      break;
    }
    c->receiver_wake.notify();
  }
  c->sender_done = true;
  c->receiver_wake.notify();
}

// Open loop, receiving half (and the connection's owner): reads answers until the sender is
// done and nothing is in flight.
Task<void> open_loop(std::shared_ptr<Conn> c, size_t index) {
  Shared* shared = c->shared;
  // Each connection's share of the rate, its schedule offset by its place among the others so
  // the connections do not all send at the same instants.
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(static_cast<double>(shared->connections) / shared->rate));
  const auto first = shared->start + interval * static_cast<int64_t>(index) /
                                         static_cast<int64_t>(shared->connections);
  spawn(send_on_schedule(c, first, interval));
  while (!c->failed) {
    if (c->in_flight.outstanding() == 0) {
      if (c->sender_done) break;
      co_await c->receiver_wake.wait();
      continue;
    }
    auto chunk = co_await c->conn.read_chunk();
    int64_t answers = -1;
    if (!chunk.ok() || chunk->empty()) {
      if (!c->failed) ++c->out->errors;
    } else {
      answers = c->consume({chunk->data(), chunk->size()});
    }
    if (answers < 0) {
      c->failed = true;
      break;
    }
    c->out->requests += static_cast<uint64_t>(answers);
    c->sender_wake.notify();
  }
  c->sender_wake.notify();  // a sender waiting for room sees `failed` and ends
  c->conn.close();          // a sender waiting to write gets an error and ends
}

Task<void> run_connection(Shared* shared, size_t worker, size_t index) {
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
  auto c = std::make_shared<Conn>(std::move(*conn), shared->make_protocol(), shared, &out);
  if (shared->rate > 0) {
    co_await open_loop(c, index);
  } else {
    co_await closed_loop(*c);
  }
  ++out.finished;  // not reached by a driver destroyed at stop()
}

}  // namespace

int main(int argc, char** argv) {
  cli::accept_dashed_flags(argc, argv);
  gflags::SetUsageMessage("load generator for echo, http, resp and rpc servers");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_connections < 1 || FLAGS_pipeline < 1 || FLAGS_message_size < 1 || FLAGS_workers < 1 ||
      FLAGS_duration <= 0 || FLAGS_rate < 0) {
    std::fprintf(stderr,
                 "loadgen: connections, pipeline, message_size, workers and duration must be "
                 "positive, rate not negative\n");
    return 2;
  }
  auto backend = parse_backend(FLAGS_backend);
  auto address = net::Address::from_host_port(FLAGS_host, static_cast<uint16_t>(FLAGS_port));
  auto protocol =
      bench::protocol_for_mode(FLAGS_mode, {.message_size = static_cast<size_t>(FLAGS_message_size),
                                            .resp_command = FLAGS_resp_command});
  if (!backend.ok() || !address.ok() || !protocol.ok()) {
    const absl::Status s = !backend.ok()   ? backend.status()
                           : !address.ok() ? address.status()
                                           : protocol.status();
    std::fprintf(stderr, "loadgen: %s\n", s.ToString().c_str());
    return 2;
  }

  Shared shared;
  shared.address = *address;
  shared.make_protocol = std::move(*protocol);
  shared.connections = static_cast<size_t>(FLAGS_connections);
  shared.depth = static_cast<size_t>(FLAGS_pipeline);
  shared.rate = FLAGS_rate;
  shared.results.resize(static_cast<size_t>(FLAGS_workers));
  Runtime rt({.workers = static_cast<size_t>(FLAGS_workers), .backend = *backend});
  if (auto s = rt.start(); !s.ok()) {
    std::fprintf(stderr, "loadgen: %s\n", s.ToString().c_str());
    return 1;
  }
  for (size_t c = 0; c < shared.connections; ++c) {
    size_t w = c % rt.size();
    rt.spawn_on(w, [&shared, w, c] { return run_connection(&shared, w, c); });
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
  shared.start = start;
  shared.stop_at = start + std::chrono::duration_cast<Clock::duration>(intended);
  shared.go.store(true, std::memory_order_release);
  // Every connection finishes what it has in flight, then ends; give stragglers a bounded grace.
  while (rt.live_tasks() > 0 && Clock::now() < shared.stop_at + kGrace) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const double self_cpu = bench::self_cpu_seconds() - self_cpu0;
  const auto server_cpu1 =
      FLAGS_server_pid ? bench::process_cpu_seconds(FLAGS_server_pid) : std::nullopt;
  rt.stop();  // joins the workers: every WorkerResult is final and visible from here on

  WorkerResult total;
  for (auto& r : shared.results) {
    total.latency.merge(r.latency);
    total.requests += r.requests;
    total.errors += r.errors;
    total.mismatches += r.mismatches;
    total.finished += r.finished;
  }
  if (total.finished < shared.connections) {
    const uint64_t stuck = shared.connections - total.finished;
    std::fprintf(stderr, "loadgen: %llu connections still busy %lld s after the run\n",
                 static_cast<unsigned long long>(stuck), static_cast<long long>(kGrace.count()));
    total.errors += stuck;
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
  // Echo in closed loop keeps the fields the benchmark scripts have always read; anything else
  // says which mode and rate it ran.
  const bool classic = FLAGS_mode == "echo" && FLAGS_rate == 0;
  const std::string text_extra =
      classic ? "" : absl::StrFormat(" mode=%s rate=%.0f", FLAGS_mode, FLAGS_rate);
  const std::string json_extra =
      classic ? "" : absl::StrFormat(",\"mode\":\"%s\",\"rate\":%.1f", FLAGS_mode, FLAGS_rate);
  std::printf(
      "%s%sconnections=%d pipeline=%d size=%d wall=%.2fs requests=%llu rps=%.0f "
      "p50=%.1fus p99=%.1fus p999=%.1fus server_cpu_us_per_req=%s loadgen_cpu_us_per_req=%.2f "
      "errors=%llu mismatches=%llu%s\n",
      FLAGS_label.c_str(), FLAGS_label.empty() ? "" : ": ", FLAGS_connections, FLAGS_pipeline,
      FLAGS_message_size, wall, static_cast<unsigned long long>(total.requests), rps,
      total.latency.percentile(0.50) / 1e3, total.latency.percentile(0.99) / 1e3,
      total.latency.percentile(0.999) / 1e3, server_cpu_text.c_str(), self_cpu * per_req,
      static_cast<unsigned long long>(total.errors),
      static_cast<unsigned long long>(total.mismatches), text_extra.c_str());
  if (!FLAGS_json.empty()) {
    std::ofstream json(FLAGS_json);
    json << absl::StrFormat(
        "{\"label\":\"%s\",\"connections\":%d,\"pipeline\":%d,\"message_size\":%d,"
        "\"intended_s\":%.3f,\"wall_s\":%.3f,\"requests\":%d,\"rps\":%.1f,\"p50_us\":%.2f,"
        "\"p99_us\":%.2f,\"p999_us\":%.2f,\"server_cpu_us_per_req\":%.3f,"
        "\"loadgen_cpu_us_per_req\":%.3f,\"errors\":%d,\"mismatches\":%d%s}\n",
        FLAGS_label, FLAGS_connections, FLAGS_pipeline, FLAGS_message_size, FLAGS_duration, wall,
        total.requests, rps, total.latency.percentile(0.50) / 1e3,
        total.latency.percentile(0.99) / 1e3, total.latency.percentile(0.999) / 1e3, server_us,
        self_cpu * per_req, total.errors, total.mismatches, json_extra);
  }
  return total.errors == 0 && total.mismatches == 0 ? 0 : 1;
}
