#include "examples/rpc/rpc_service.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "examples/common/wakeup.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"

namespace shardloop::examples {
namespace {

using rpc::FrameType;

template <typename T>
T load_le(const char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

template <typename T>
void append_le(T v, std::string* out) {
  for (size_t i = 0; i < sizeof(T); ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void append_reply(uint64_t id, std::string_view payload, std::string* out) {
  const rpc::Field fields[] = {{.type = rpc_field::kPayload, .data = payload}};
  rpc::append_frame(FrameType::kResponse, id, 0, fields, out);
}

void append_error(uint64_t id, RpcError code, std::string_view message, std::string* out) {
  std::string code_bytes;
  append_le(static_cast<uint16_t>(code), &code_bytes);
  const rpc::Field fields[] = {{.type = rpc_field::kErrorCode, .data = code_bytes},
                               {.type = rpc_field::kErrorMessage, .data = message}};
  rpc::append_frame(FrameType::kError, id, 0, fields, out);
}

// Above this many queued answer bytes the reader stops reading until the writer catches up, so
// a client that pipelines without reading cannot make the server buffer without bound.
constexpr size_t kMaxQueuedAnswers = 1024 * 1024;

// One connection, shared by its reader (the handler), its writer and its sleeping requests, all
// of which run on the connection's worker.
//
// Thread-safety: owner worker only; nothing here is shared across threads.
struct ConnState {
  ConnState(net::Connection c, const RpcOptions& o) : conn(std::move(c)), options(o) {}

  net::Connection conn;
  const RpcOptions options;
  std::string out;            // answers not yet handed to the writer
  size_t in_flight = 0;       // sleeping requests
  bool reading_done = false;  // nothing more will be queued
  bool write_failed = false;  // the peer is gone: stop producing
  bool writer_done = false;   // the writer has flushed (or failed) and ended
  Wakeup writer_wake;         // `out` gained bytes, or reading_done
  Wakeup reader_wake;         // `out` drained, in_flight dropped, or the writer ended
};

// The writer: hands whatever answers are queued to the connection in one write, as they come,
// whoever produced them. One writer per connection, so at most one coroutine waits to write.
Task<void> write_answers(std::shared_ptr<ConnState> s) {
  std::string buf;
  for (;;) {
    while (s->out.empty() && !s->reading_done) co_await s->writer_wake.wait();
    if (s->out.empty()) break;  // reading is done and everything queued went out
    buf.swap(s->out);
    s->out.clear();
    const bool ok = (co_await s->conn.write(buf)).ok();
    buf.clear();
    if (!ok) {
      s->write_failed = true;
      break;
    }
    s->reader_wake.notify();
  }
  if (!s->write_failed && !(co_await s->conn.flush()).ok()) s->write_failed = true;
  s->writer_done = true;
  s->reader_wake.notify();
}

// A sleep request: answers at `at`, with an empty payload or, if its deadline came first, with
// kDeadlineExceeded.
Task<void> answer_later(std::shared_ptr<ConnState> s, uint64_t id, TimePoint at,
                        bool deadline_first) {
  co_await sleep_until(at);
  if (deadline_first) {
    append_error(id, RpcError::kDeadlineExceeded, "deadline exceeded", &s->out);
  } else {
    append_reply(id, {}, &s->out);
  }
  --s->in_flight;
  s->writer_wake.notify();
  s->reader_wake.notify();
}

void answer_sum(uint64_t id, std::string_view payload, std::string* out) {
  if (payload.size() % 8 != 0) {
    append_error(id, RpcError::kBadArgument,
                 absl::StrCat("sum: the payload must be little-endian i64 values (a multiple of 8 "
                              "bytes), got ",
                              payload.size(), " bytes"),
                 out);
    return;
  }
  int64_t sum = 0;
  for (size_t off = 0; off < payload.size(); off += 8) {
    const auto v = static_cast<int64_t>(load_le<uint64_t>(payload.data() + off));
    if (__builtin_add_overflow(sum, v, &sum)) {
      append_error(id, RpcError::kBadArgument, "sum: the sum overflows i64", out);
      return;
    }
  }
  std::string bytes;
  append_le(static_cast<uint64_t>(sum), &bytes);
  append_reply(id, bytes, out);
}

// Answers (or schedules the answer to) one request frame. Returns false on a framing error
// (its error frame queued): the connection must close.
bool handle_frame(const std::shared_ptr<ConnState>& s, const rpc::Frame& frame) {
  const uint64_t id = frame.header.request_id;
  std::string* out = &s->out;
  switch (frame.header.type) {
    case FrameType::kPing:
      rpc::append_frame(FrameType::kPing, id, 0, {}, out);
      return true;
    case FrameType::kRequest:
      break;
    default:
      append_error(id, RpcError::kBadFrame, "bad frame: a client may send only requests and pings",
                   out);
      return false;
  }
  const rpc::Field* method = frame.find(rpc_field::kMethod);
  const rpc::Field* payload_field = frame.find(rpc_field::kPayload);
  const rpc::Field* deadline_field = frame.find(rpc_field::kDeadlineMs);
  const std::string_view payload = payload_field != nullptr ? payload_field->data : "";
  if (method == nullptr) {
    append_error(id, RpcError::kBadArgument, "request without a method field", out);
    return true;
  }
  if (method->data != "echo" && method->data != "sum" && method->data != "sleep") {
    append_error(id, RpcError::kUnknownMethod,
                 absl::StrCat("unknown method '", std::string(method->data.substr(0, 64)), "'"),
                 out);
    return true;
  }
  std::optional<std::chrono::milliseconds> budget;
  if (deadline_field != nullptr) {
    if (deadline_field->data.size() != 4) {
      append_error(id, RpcError::kBadArgument,
                   "the deadline field must be a 4-byte little-endian u32 of milliseconds", out);
      return true;
    }
    budget = std::chrono::milliseconds(load_le<uint32_t>(deadline_field->data.data()));
    if (budget->count() == 0) {
      append_error(id, RpcError::kDeadlineExceeded, "deadline exceeded", out);
      return true;
    }
  }
  if (method->data == "echo") {
    append_reply(id, payload, out);
  } else if (method->data == "sum") {
    answer_sum(id, payload, out);
  } else {  // sleep
    const auto max_ms = absl::ToInt64Milliseconds(s->options.max_sleep);
    if (payload.size() != 4 || load_le<uint32_t>(payload.data()) > max_ms) {
      append_error(id, RpcError::kBadArgument,
                   absl::StrCat("sleep: the payload must be a 4-byte little-endian u32 of at most ",
                                max_ms, " milliseconds"),
                   out);
      return true;
    }
    if (s->in_flight >= s->options.max_in_flight) {
      append_error(
          id, RpcError::kOverloaded,
          absl::StrCat("too many requests in flight (limit ", s->options.max_in_flight, ")"), out);
      return true;
    }
    const auto now = Clock::now();
    const auto wake = now + std::chrono::milliseconds(load_le<uint32_t>(payload.data()));
    const bool deadline_first = budget && now + *budget < wake;
    ++s->in_flight;
    spawn(answer_later(s, id, deadline_first ? now + *budget : wake, deadline_first));
  }
  return true;
}

// Queues the error frame for a framing error found at the start of `rest`.
void answer_frame_error(rpc::FrameError error, std::string_view rest,
                        const rpc::FrameLimits& limits, std::string* out) {
  if (error == rpc::FrameError::kFrameTooLarge) {
    // The decoder refuses a frame by its total length before the frame arrives; the id (bytes
    // 8..16) precedes that length, so the answer can name the request.
    const uint64_t id = load_le<uint64_t>(rest.data() + 8);
    const uint32_t total = load_le<uint32_t>(rest.data() + 16);
    append_error(id, RpcError::kFrameTooLarge,
                 absl::StrCat("frame of ", total, " bytes exceeds the limit of ",
                              limits.max_frame_size, " bytes"),
                 out);
    return;
  }
  append_error(0, RpcError::kBadFrame,
               absl::StrCat("bad frame: ", std::string(rpc::frame_error_message(error))), out);
}

Task<void> serve(net::Connection conn, RpcOptions options) {
  auto s = std::make_shared<ConnState>(std::move(conn), options);
  spawn(write_answers(s));
  rpc::FrameDecoder decoder(options.limits);
  std::string in;  // received bytes not yet decoded (a partial frame)
  bool bad_stream = false;
  while (!bad_stream && !s->write_failed) {
    auto chunk = co_await s->conn.read_chunk();
    if (!chunk.ok() || chunk->empty()) break;  // error, drain or peer finished: answer what is due
    // Decode straight from the received chunk when no partial frame waits (the usual case), so
    // whole frames are never copied; only a trailing partial frame is kept.
    const bool from_chunk = in.empty();
    if (!from_chunk) in.append(chunk->data(), chunk->size());
    const std::string_view data = from_chunk ? std::string_view(chunk->data(), chunk->size()) : in;
    size_t consumed = 0;
    for (;;) {
      const rpc::DecodeResult r = decoder.decode(data.substr(consumed));
      if (r.status == rpc::DecodeStatus::kNeedMore) break;
      if (r.status == rpc::DecodeStatus::kError) {
        answer_frame_error(r.error, data.substr(consumed), options.limits, &s->out);
        bad_stream = true;
        break;
      }
      consumed += r.consumed;
      if (!handle_frame(s, decoder.frame())) {
        bad_stream = true;
        break;
      }
    }
    if (from_chunk) {
      in.assign(data.substr(consumed));
    } else {
      in.erase(0, consumed);
    }
    if (in.empty() && in.capacity() > 64 * 1024) std::string().swap(in);  // give a big frame back
    s->writer_wake.notify();
    while (s->out.size() > kMaxQueuedAnswers && !s->write_failed) {
      co_await s->reader_wake.wait();
    }
  }
  // Requests still sleeping answer first (each is bounded by max_sleep or its deadline); then
  // the writer sends what is queued and ends.
  while (s->in_flight > 0 && !s->write_failed) co_await s->reader_wake.wait();
  s->reading_done = true;
  s->writer_wake.notify();
  while (!s->writer_done) co_await s->reader_wake.wait();
  if (s->write_failed) {
    s->conn.close();
    co_return;
  }
  if (bad_stream) {
    // Lingering close, as http_server does: FIN after the error frame, then read and discard
    // what the client still sends (at most 1 s and 64 KiB), so the kernel does not answer
    // unread bytes with an RST that could destroy the error frame before the client reads it.
    if ((co_await s->conn.shutdown_write()).ok()) {
      s->conn.set_deadline(absl::Now() + absl::Seconds(1));
      size_t discarded = 0;
      while (discarded < 64 * 1024) {
        auto chunk = co_await s->conn.read_chunk();
        if (!chunk.ok() || chunk->empty()) break;
        discarded += chunk->size();
      }
    }
    s->conn.close();
    co_return;
  }
  (void)co_await s->conn.finish();
}

}  // namespace

std::string_view rpc_error_name(RpcError error) {
  switch (error) {
    case RpcError::kNone:
      return "ok";
    case RpcError::kUnknownMethod:
      return "unknown method";
    case RpcError::kBadArgument:
      return "bad argument";
    case RpcError::kDeadlineExceeded:
      return "deadline exceeded";
    case RpcError::kOverloaded:
      return "overloaded";
    case RpcError::kBadFrame:
      return "bad frame";
    case RpcError::kFrameTooLarge:
      return "frame too large";
  }
  return "unknown error code";
}

Task<void> serve_rpc(net::Connection conn) { return serve(std::move(conn), RpcOptions{}); }

net::ConnectionHandler rpc_handler(RpcOptions options) {
  return [options](net::Connection conn) { return serve(std::move(conn), options); };
}

void append_rpc_request(const RpcRequest& request, std::string* out) {
  std::string deadline;
  rpc::Field fields[3] = {{.type = rpc_field::kMethod, .data = request.method},
                          {.type = rpc_field::kPayload, .data = request.payload}};
  size_t n = 2;
  if (request.deadline_ms >= 0) {
    append_le(static_cast<uint32_t>(std::min<int64_t>(request.deadline_ms, UINT32_MAX)), &deadline);
    fields[n++] = {.type = rpc_field::kDeadlineMs, .data = deadline};
  }
  rpc::append_frame(FrameType::kRequest, request.id, 0, absl::MakeConstSpan(fields, n), out);
}

bool parse_rpc_reply(const rpc::Frame& frame, RpcReply* reply) {
  *reply = {.id = frame.header.request_id, .type = frame.header.type};
  switch (frame.header.type) {
    case FrameType::kResponse:
      if (const rpc::Field* p = frame.find(rpc_field::kPayload)) reply->payload = p->data;
      return true;
    case FrameType::kPing:
      return true;
    case FrameType::kError: {
      const rpc::Field* code = frame.find(rpc_field::kErrorCode);
      if (code == nullptr || code->data.size() != 2) return false;
      reply->error = static_cast<RpcError>(load_le<uint16_t>(code->data.data()));
      if (reply->error == RpcError::kNone) return false;
      if (const rpc::Field* m = frame.find(rpc_field::kErrorMessage)) reply->message = m->data;
      return true;
    }
    case FrameType::kRequest:
      break;
  }
  return false;
}

std::string encode_i64s(absl::Span<const int64_t> values) {
  std::string out;
  for (int64_t v : values) append_le(static_cast<uint64_t>(v), &out);
  return out;
}

std::string encode_u32(uint32_t value) {
  std::string out;
  append_le(value, &out);
  return out;
}

bool decode_i64(std::string_view bytes, int64_t* value) {
  if (bytes.size() != 8) return false;
  *value = static_cast<int64_t>(load_le<uint64_t>(bytes.data()));
  return true;
}

}  // namespace shardloop::examples
