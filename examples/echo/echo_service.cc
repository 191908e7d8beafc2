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

}  // namespace shardloop::examples
