#include "examples/echo/echo_service.h"

#include <memory>

namespace shardloop::examples {

Task<void> serve_echo(net::Connection conn) {
  auto buf = std::make_unique<char[]>(kEchoBufferSize);
  for (;;) {
    auto n = co_await conn.read(absl::MakeSpan(buf.get(), kEchoBufferSize));
    if (!n.ok() || *n == 0) break;  // error or peer finished: either way, done
    if (!(co_await conn.write(absl::MakeConstSpan(buf.get(), *n))).ok()) break;
  }
  (void)co_await conn.flush();  // an orderly close: what was echoed goes out first
  conn.close();
}

}  // namespace shardloop::examples
