#include "examples/http/http_service.h"

#include <string>
#include <string_view>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "net/protocols/http_parser.h"
#include "net/protocols/http_response.h"
#include "runtime/runtime.h"
#include "runtime/worker.h"

namespace shardloop::examples {
namespace {

std::string stats_json() {
  Runtime& rt = Worker::current()->runtime();
  std::string json = "{\"workers\":[";
  for (size_t i = 0; i < rt.size(); ++i) {
    WorkerStats s = rt.worker(i).stats();
    absl::StrAppendFormat(&json,
                          "%s{\"worker\":%d,\"tasks_run\":%d,\"polls\":%d,\"events\":%d,"
                          "\"stale_events\":%d,\"parks\":%d,\"wakeups_sent\":%d,\"live_tasks\":%d}",
                          i == 0 ? "" : ",", i, s.tasks_run, s.polls, s.events, s.stale_events,
                          s.parks, s.wakeups_sent, s.live_tasks);
  }
  json += "]}\n";
  return json;
}

// Appends the answer to `req` to `out`.
void respond(const http::Request& req, bool close, std::string* out) {
  static constexpr http::Header kText[] = {{"Content-Type", "text/plain"}};
  static constexpr http::Header kJson[] = {{"Content-Type", "application/json"}};
  const bool head = req.method == "HEAD";
  if (req.method != "GET" && !head) {
    http::append_response(
        {.status = 405, .headers = kText, .body = "method not allowed\n", .close = close}, out);
  } else if (req.target == "/") {
    http::append_response(
        {.status = 200, .headers = kText, .body = "hello\n", .close = close, .head = head}, out);
  } else if (req.target == "/stats") {
    const std::string body = stats_json();
    http::append_response(
        {.status = 200, .headers = kJson, .body = body, .close = close, .head = head}, out);
  } else {
    http::append_response(
        {.status = 404, .headers = kText, .body = "not found\n", .close = close, .head = head},
        out);
  }
}

}  // namespace

Task<void> serve_http(net::Connection conn) {
  http::RequestParser parser;
  std::string in;   // received bytes not yet consumed by the parser
  std::string out;  // answers not yet written
  bool sent_continue = false;
  bool done = false;
  bool rejected = false;
  while (!done) {
    size_t consumed = 0;
    for (;;) {
      http::ParseResult r = parser.parse(std::string_view(in).substr(consumed));
      if (r.status == http::ParseStatus::kNeedMore) {
        if (parser.awaiting_body_after_continue() && !sent_continue) {
          out += "HTTP/1.1 100 Continue\r\n\r\n";
          sent_continue = true;
        }
        break;
      }
      if (r.status == http::ParseStatus::kError) {
        http::append_error_response(r.error_status, &out);
        rejected = true;  // nothing after a framing error can be trusted: close
        done = true;
        break;
      }
      const bool close = r.must_close || conn.draining();
      respond(parser.request(), close, &out);
      consumed += r.consumed;
      sent_continue = false;
      if (close) {
        done = true;
        break;
      }
    }
    in.erase(0, consumed);
    if (!out.empty()) {
      if (!(co_await conn.write(out)).ok()) break;
      out.clear();
    }
    if (done) break;
    if (in.empty() && in.capacity() > 16 * 1024) std::string().swap(in);  // idle: give it back
    auto chunk = co_await conn.read_chunk();
    if (!chunk.ok() || chunk->empty()) break;
    in.append(chunk->data(), chunk->size());
  }
  if (rejected) {
    // Lingering close, as nginx does: send FIN after the error answer, then read and discard
    // what the client still sends (at most 1 s and 64 KiB). Closing with unread bytes would
    // make the kernel answer them with an RST, which can destroy the error answer before the
    // client reads it.
    if ((co_await conn.shutdown_write()).ok()) {
      conn.set_deadline(absl::Now() + absl::Seconds(1));
      size_t discarded = 0;
      while (discarded < 64 * 1024) {
        auto chunk = co_await conn.read_chunk();
        if (!chunk.ok() || chunk->empty()) break;
        discarded += chunk->size();
      }
    }
    conn.close();
    co_return;
  }
  (void)co_await conn.finish();
}

}  // namespace shardloop::examples
