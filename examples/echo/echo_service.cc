#include "examples/echo/echo_service.h"

#include <memory>

namespace shardloop::examples {

Task<void> serve_echo(net::Connection conn) {
  for (;;) {
    auto chunk = co_await conn.read_chunk();
    if (!chunk.ok() || chunk->empty()) break;  // error or peer finished: either way, done
    // write() copies what the socket does not take at once, so the chunk may be reused after.
    if (!(co_await conn.write(*chunk)).ok()) break;
  }
  (void)co_await conn.flush();  // an orderly close: what was echoed goes out first
  conn.close();
}

net::ConnectionHandler serve_echo_with_work(std::chrono::nanoseconds work) {
  if (work <= std::chrono::nanoseconds::zero()) return serve_echo;
  return [work](net::Connection conn) -> Task<void> {
    for (;;) {
      auto chunk = co_await conn.read_chunk();
      if (!chunk.ok() || chunk->empty()) break;
      const auto until = std::chrono::steady_clock::now() + work;
      while (std::chrono::steady_clock::now() < until) {
      }
      if (!(co_await conn.write(*chunk)).ok()) break;
    }
    (void)co_await conn.flush();
    conn.close();
  };
}

}  // namespace shardloop::examples
