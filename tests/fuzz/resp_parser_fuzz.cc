// libFuzzer target for the RESP2 command parser and writer (net/protocols/resp_parser.h,
// resp_writer.h).
//
// For every input, with the default limits and with small ones: no crash, no read past the
// input, the same transcript in one piece, in pieces derived from the input and byte by byte,
// and the transcript invariants. Then a round trip: every command parsed from the input,
// re-encoded with append_command, parses back to the same arguments. Run with
// tests/fuzz/run_fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "net/protocols/resp_parser.h"
#include "net/protocols/resp_writer.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace shardloop;

void check_reencoding(std::string_view input) {
  resp::CommandParser parser;
  resp::CommandParser again;
  std::string encoded;
  for (;;) {
    const resp::ParseResult r = parser.parse(input);
    if (r.status != resp::ParseStatus::kCommand) return;
    encoded.clear();
    resp::append_command(parser.args(), &encoded);
    again.reset();
    const resp::ParseResult r2 = again.parse(encoded);
    if (r2.status != resp::ParseStatus::kCommand || r2.consumed != encoded.size() ||
        std::vector<std::string_view>(again.args().begin(), again.args().end()) !=
            std::vector<std::string_view>(parser.args().begin(), parser.args().end())) {
      std::fprintf(stderr, "re-encoded command parses differently: %s\n",
                   testing::escape(encoded).c_str());
      std::abort();
    }
    input.remove_prefix(r.consumed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  resp::Limits small;
  small.max_bulk_length = 16;
  small.max_multibulk_count = 4;
  small.max_inline_size = 32;
  for (const resp::Limits& limits : {resp::Limits{}, small}) {
    fuzz::check_delivery(input, limits, testing::resp_transcript);
  }
  check_reencoding(input);
  return 0;
}
