// rpc_client: calls examples/rpc_server over one connection and prints the answers and latency.
//
// Shows: a client on shardloop that pipelines requests (up to --pipeline in flight), matches
// answers to requests by id (the server may answer out of order), and puts a per-request
// deadline in each request (--deadline_ms, enforced by the server, which answers "deadline
// exceeded" when it runs out). The wire format is in examples/rpc/rpc_service.h.
//
// Try it (with ./rpc_server --port 7100 running):
//   ./rpc_client --port 7100 --method echo --payload hello      # id=1 ok: hello
//   ./rpc_client --port 7100 --method sum --payload 1,2,39      # id=1 ok: 42
//   ./rpc_client --port 7100 --method sum --payload 9223372036854775807,1   # bad argument
//   ./rpc_client --port 7100 --method sleep --payload 200 --deadline_ms 50  # deadline exceeded
//   ./rpc_client --port 7100 --requests 100000 --pipeline 32    # summary with p50/p99/p999
// Exits 0 when every request got a successful answer, 1 otherwise.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "examples/common/cli.h"
#include "examples/rpc/rpc_service.h"
#include "gflags/gflags.h"
#include "net/dialer.h"
#include "runtime/runtime.h"

DEFINE_string(host, "127.0.0.1", "server address");
DEFINE_int32(port, 7100, "server port");
DEFINE_int32(requests, 1, "requests to send");
DEFINE_int32(pipeline, 1, "requests in flight at once");
DEFINE_string(method, "echo", "method to call: echo, sum or sleep (anything else is sent as is)");
DEFINE_string(payload, "",
              "echo: the bytes to send (default hello); sum: comma-separated integers (default "
              "1,2,3); sleep: milliseconds (default 100)");
DEFINE_int32(deadline_ms, -1, "per-request deadline sent with each request (-1: none)");
DEFINE_int32(print, 10, "print each answer when at most this many requests are sent");
DEFINE_double(timeout_s, 30, "give up (exit 1) when the whole run takes longer than this");
DEFINE_string(backend, "auto", "poller backend: epoll, io_uring or auto");

using namespace shardloop;
using Clock = std::chrono::steady_clock;

namespace {

struct Results {
  uint64_t ok = 0;
  uint64_t errors = 0;  // error answers
  std::string failure;  // connection or protocol failure, if any
  std::vector<uint64_t> latency_ns;
  Clock::duration elapsed{};
};

absl::StatusOr<std::string> encode_payload() {
  if (FLAGS_method == "sum") {
    std::vector<int64_t> values;
    for (absl::string_view part :
         absl::StrSplit(FLAGS_payload.empty() ? "1,2,3" : FLAGS_payload, ',', absl::SkipEmpty())) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(part, &v)) {
        return absl::InvalidArgumentError("sum: --payload must be comma-separated integers");
      }
      values.push_back(v);
    }
    return examples::encode_i64s(values);
  }
  if (FLAGS_method == "sleep") {
    uint32_t ms = 0;
    if (!absl::SimpleAtoi(FLAGS_payload.empty() ? "100" : FLAGS_payload, &ms)) {
      return absl::InvalidArgumentError("sleep: --payload must be a number of milliseconds");
    }
    return examples::encode_u32(ms);
  }
  return FLAGS_payload.empty() && FLAGS_method == "echo" ? std::string("hello") : FLAGS_payload;
}

void print_answer(const examples::RpcReply& reply) {
  if (reply.type == rpc::FrameType::kError) {
    std::printf("id=%llu error (%s): %.*s\n", static_cast<unsigned long long>(reply.id),
                std::string(examples::rpc_error_name(reply.error)).c_str(),
                static_cast<int>(reply.message.size()), reply.message.data());
    return;
  }
  int64_t sum = 0;
  if (FLAGS_method == "sum" && examples::decode_i64(reply.payload, &sum)) {
    std::printf("id=%llu ok: %lld\n", static_cast<unsigned long long>(reply.id),
                static_cast<long long>(sum));
  } else {
    const size_t shown = std::min<size_t>(reply.payload.size(), 200);
    std::printf("id=%llu ok: %.*s%s\n", static_cast<unsigned long long>(reply.id),
                static_cast<int>(shown), reply.payload.data(),
                shown < reply.payload.size() ? "..." : "");
  }
}

Task<void> run(net::Address address, std::string payload, Results* results) {
  auto conn = co_await net::dial(address);
  if (!conn.ok()) {
    results->failure = conn.status().ToString();
    co_return;
  }
  const uint64_t total = static_cast<uint64_t>(FLAGS_requests);
  const size_t depth = static_cast<size_t>(FLAGS_pipeline);
  const bool print = total <= static_cast<uint64_t>(FLAGS_print);
  absl::flat_hash_map<uint64_t, Clock::time_point> pending;  // id -> send time
  uint64_t next_id = 1, answered = 0;
  rpc::FrameDecoder decoder;
  std::string in, out;
  const auto start = Clock::now();
  while (answered < total) {
    // Top the window up, then read whatever answers come, in whatever order.
    out.clear();
    const auto now = Clock::now();
    while (next_id <= total && pending.size() < depth) {
      examples::append_rpc_request({.id = next_id,
                                    .method = FLAGS_method,
                                    .payload = payload,
                                    .deadline_ms = FLAGS_deadline_ms},
                                   &out);
      pending[next_id++] = now;
    }
    if (!out.empty() && !(co_await conn->write(out)).ok()) {
      results->failure = "write failed";
      break;
    }
    auto chunk = co_await conn->read_chunk();
    if (!chunk.ok() || chunk->empty()) {
      results->failure =
          chunk.ok() ? "the server closed the connection" : chunk.status().ToString();
      break;
    }
    in.append(chunk->data(), chunk->size());
    size_t consumed = 0;
    for (;;) {
      const rpc::DecodeResult r = decoder.decode(std::string_view(in).substr(consumed));
      if (r.status == rpc::DecodeStatus::kNeedMore) break;
      examples::RpcReply reply;
      if (r.status == rpc::DecodeStatus::kError ||
          !examples::parse_rpc_reply(decoder.frame(), &reply)) {
        results->failure = "malformed answer from the server";
        co_return;
      }
      consumed += r.consumed;
      auto it = pending.find(reply.id);
      if (it == pending.end()) {
        if (print || reply.id == 0) print_answer(reply);
        results->failure = "answer with an id that is not in flight";
        co_return;
      }
      results->latency_ns.push_back(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - it->second).count()));
      pending.erase(it);
      ++answered;
      if (reply.type == rpc::FrameType::kError) {
        ++results->errors;
      } else {
        ++results->ok;
      }
      if (print) print_answer(reply);
    }
    in.erase(0, consumed);
  }
  results->elapsed = Clock::now() - start;
  (void)co_await conn->finish();
}

uint64_t percentile(const std::vector<uint64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1,
                         static_cast<size_t>(q * static_cast<double>(sorted.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  cli::accept_dashed_flags(argc, argv);
  gflags::SetUsageMessage("RPC client for rpc_server");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_requests < 1 || FLAGS_pipeline < 1) {
    std::fprintf(stderr, "rpc_client: --requests and --pipeline must be positive\n");
    return 2;
  }
  auto backend = parse_backend(FLAGS_backend);
  auto address = net::Address::from_host_port(FLAGS_host, static_cast<uint16_t>(FLAGS_port));
  auto payload = encode_payload();
  if (!backend.ok() || !address.ok() || !payload.ok()) {
    const absl::Status s = !backend.ok()   ? backend.status()
                           : !address.ok() ? address.status()
                                           : payload.status();
    std::fprintf(stderr, "rpc_client: %s\n", s.ToString().c_str());
    return 2;
  }

  Runtime rt({.workers = 1, .backend = *backend});
  if (auto s = rt.start(); !s.ok()) {
    std::fprintf(stderr, "rpc_client: %s\n", s.ToString().c_str());
    return 1;
  }
  Results results;
  rt.spawn_on(0, [&] { return run(*address, *payload, &results); });
  const auto give_up = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(FLAGS_timeout_s));
  while (rt.live_tasks() > 0 && Clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const bool timed_out = rt.live_tasks() > 0;
  rt.stop();  // joins the worker: `results` is complete and visible from here on
  if (timed_out) {
    std::fprintf(stderr, "rpc_client: gave up after %.1f s\n", FLAGS_timeout_s);
    return 1;
  }
  if (!results.failure.empty()) std::fprintf(stderr, "rpc_client: %s\n", results.failure.c_str());

  std::sort(results.latency_ns.begin(), results.latency_ns.end());
  const double seconds = std::chrono::duration<double>(results.elapsed).count();
  const auto& l = results.latency_ns;
  std::printf(
      "requests=%d ok=%llu errors=%llu elapsed=%.3fs rps=%.0f latency p50=%.1fus p99=%.1fus "
      "p999=%.1fus max=%.1fus\n",
      FLAGS_requests, static_cast<unsigned long long>(results.ok),
      static_cast<unsigned long long>(results.errors), seconds,
      seconds > 0 ? static_cast<double>(l.size()) / seconds : 0.0, percentile(l, 0.50) / 1e3,
      percentile(l, 0.99) / 1e3, percentile(l, 0.999) / 1e3, l.empty() ? 0.0 : l.back() / 1e3);
  return results.failure.empty() && results.errors == 0 ? 0 : 1;
}
