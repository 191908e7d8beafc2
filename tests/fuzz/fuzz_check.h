// Shared by the fuzz targets: the delivery-independence check. A one-piece transcript and a
// transcript of the same bytes in pieces (sizes derived from the input, and byte by byte for
// short inputs) must be equal and free of broken invariants; otherwise both are printed and the
// target aborts, which libFuzzer reports as a crash with the input saved.
//
// Thread-safety: plain functions (libFuzzer runs one input at a time per process).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tests/protocols/transcript.h"

namespace shardloop::fuzz {

// Inputs up to this size are also fed byte by byte: the harness copies the unconsumed bytes for
// every call, so this costs O(size^2).
inline constexpr size_t kByteByByteMax = 512;

inline void expect_same(const testing::Transcript& whole, const testing::Transcript& pieces,
                        const char* what) {
  if (whole == pieces && !testing::has_violation(whole) && !testing::has_violation(pieces)) {
    return;
  }
  std::fprintf(stderr,
               "%s: transcripts differ or break an invariant\n--- one piece:\n%s"
               "--- in pieces:\n%s",
               what, testing::to_string(whole).c_str(), testing::to_string(pieces).c_str());
  std::abort();
}

// Runs `transcript(input, limits, piece_sizes)` one-shot, in pieces derived from the input, and
// byte by byte when short, and checks they agree.
template <typename Limits, typename TranscriptFn>
void check_delivery(std::string_view input, const Limits& limits, TranscriptFn transcript) {
  const testing::Transcript whole = transcript(input, limits, std::vector<size_t>{input.size()});
  expect_same(whole, transcript(input, limits, testing::pieces_from_bytes(input)), "random pieces");
  if (input.size() <= kByteByByteMax) {
    expect_same(whole, transcript(input, limits, testing::byte_by_byte(input.size())),
                "byte by byte");
  }
}

}  // namespace shardloop::fuzz
