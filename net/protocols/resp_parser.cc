#include "net/protocols/resp_parser.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "net/protocols/internal/resp_inline.h"

namespace shardloop::resp {
namespace {

constexpr std::string_view kInvalidMultibulkLength = "Protocol error: invalid multibulk length";
constexpr std::string_view kInvalidBulkLength = "Protocol error: invalid bulk length";
constexpr std::string_view kTooBigInline = "Protocol error: too big inline request";
constexpr std::string_view kTooBigMbulkCount = "Protocol error: too big mbulk count string";
constexpr std::string_view kTooBigBulkCount = "Protocol error: too big bulk count string";
constexpr std::string_view kUnbalancedQuotes = "Protocol error: unbalanced quotes in request";
constexpr std::string_view kMissingBulkCrlf = "Protocol error: expected CRLF after bulk string";

// Redis preallocates at most this many argument slots for a `*N` header, so that a few bytes
// announcing a million arguments cannot make the server allocate for a million.
constexpr size_t kMaxPreallocatedArgs = 1024;

// Redis's string2ll: an optional '-', then "0" or a digit 1-9 followed by digits, nothing else
// (no '+', no spaces, no leading zeros), fitting in a signed 64-bit integer.
std::optional<int64_t> parse_int64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  if (s == "0") return 0;
  bool negative = false;
  size_t i = 0;
  if (s[0] == '-') {
    negative = true;
    i = 1;
    if (s.size() == 1) return std::nullopt;
  }
  if (s[i] < '1' || s[i] > '9') return std::nullopt;
  uint64_t v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  if (negative) {
    if (v > static_cast<uint64_t>(INT64_MAX) + 1) return std::nullopt;
    return static_cast<int64_t>(0 - v);
  }
  if (v > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<int64_t>(v);
}

}  // namespace

void CommandParser::reset() {
  state_ = State::kStart;
  pos_ = 0;
  scan_ = 0;
  remaining_ = 0;
  bulk_length_ = 0;
  inline_ = false;
  slices_.clear();
  args_.clear();
  inline_storage_.clear();
  error_.clear();
}

ParseResult CommandParser::fail(std::string message) {
  error_ = std::move(message);
  state_ = State::kError;
  return {.status = ParseStatus::kError, .error = error_};
}

ParseResult CommandParser::parse(std::string_view input) {
  if (state_ == State::kError) return {.status = ParseStatus::kError, .error = error_};
  if (state_ == State::kComplete) {
    // The caller moved on to the next command: start over, keeping the vectors' capacity.
    state_ = State::kStart;
    pos_ = 0;
    scan_ = 0;
    slices_.clear();
    args_.clear();
    inline_storage_.clear();
  }
  return run(input);
}

ParseResult CommandParser::run(std::string_view input) {
  for (;;) {
    switch (state_) {
      case State::kStart:
        if (input.empty()) return {};
        inline_ = input[0] != '*';
        state_ = inline_ ? State::kInline : State::kCount;
        break;
      case State::kCount:
      case State::kBulkLength:
      case State::kBulkData:
      case State::kInline: {
        const State before = state_;
        const size_t pos_before = pos_;
        ParseResult r = before == State::kCount        ? parse_count(input)
                        : before == State::kBulkLength ? parse_bulk_length(input)
                        : before == State::kBulkData   ? parse_bulk_data(input)
                                                       : parse_inline(input);
        if (r.status != ParseStatus::kNeedMore) return r;
        // kNeedMore from a step that made no progress means the input is exhausted.
        if (state_ == before && pos_ == pos_before) return r;
        break;
      }
      case State::kComplete:
      case State::kError:
        return {};  // unreachable: parse() handles both
    }
  }
}

size_t CommandParser::find_number_line(std::string_view input, std::string_view too_big_error) {
  const size_t from = std::max(scan_, pos_);
  const void* cr =
      from < input.size() ? std::memchr(input.data() + from, '\r', input.size() - from) : nullptr;
  if (cr == nullptr) {
    scan_ = input.size();
    // Only the length can be judged before the line ends; a complete line is judged by the
    // same measure first (below), so the verdict does not depend on where reads split.
    if (input.size() - pos_ > limits_.max_inline_size) fail(std::string(too_big_error));
    return std::string_view::npos;
  }
  const size_t r = static_cast<const char*>(cr) - input.data();
  scan_ = r;
  if (r - pos_ > limits_.max_inline_size) {
    fail(std::string(too_big_error));
    return std::string_view::npos;
  }
  if (r + 1 >= input.size()) return std::string_view::npos;  // need the '\n'
  return r;
}

ParseResult CommandParser::parse_count(std::string_view input) {
  const size_t r = find_number_line(input, kTooBigMbulkCount);
  if (state_ == State::kError) return {.status = ParseStatus::kError, .error = error_};
  if (r == std::string_view::npos) return {};
  const std::optional<int64_t> n = parse_int64(input.substr(pos_ + 1, r - pos_ - 1));
  if (input[r + 1] != '\n' || !n.has_value() ||
      (*n > 0 && static_cast<uint64_t>(*n) > limits_.max_multibulk_count)) {
    return fail(std::string(kInvalidMultibulkLength));
  }
  pos_ = r + 2;
  scan_ = pos_;
  if (*n <= 0) return complete(input, pos_);  // `*0` and `*-1`: an empty command
  remaining_ = static_cast<uint64_t>(*n);
  slices_.reserve(std::min<size_t>(remaining_, kMaxPreallocatedArgs));
  state_ = State::kBulkLength;
  return {};
}

ParseResult CommandParser::parse_bulk_length(std::string_view input) {
  // As redis does, the line is found (and its length judged) before its first byte is: a long
  // run of garbage is "too big bulk count string", a short one "expected '$', got ...".
  const size_t r = find_number_line(input, kTooBigBulkCount);
  if (state_ == State::kError) return {.status = ParseStatus::kError, .error = error_};
  if (r == std::string_view::npos) return {};
  if (input[pos_] != '$') {
    // Redis formats the byte with %c and then blanks CR and LF so the reply stays one line.
    char got = input[pos_];
    if (got == '\r' || got == '\n') got = ' ';
    std::string message = "Protocol error: expected '$', got '";
    message.push_back(got);
    message.push_back('\'');
    return fail(std::move(message));
  }
  const std::optional<int64_t> n = parse_int64(input.substr(pos_ + 1, r - pos_ - 1));
  if (input[r + 1] != '\n' || !n.has_value() || *n < 0 ||
      static_cast<uint64_t>(*n) > limits_.max_bulk_length) {
    return fail(std::string(kInvalidBulkLength));
  }
  bulk_length_ = static_cast<uint64_t>(*n);
  pos_ = r + 2;
  scan_ = pos_;
  state_ = State::kBulkData;
  return {};
}

ParseResult CommandParser::parse_bulk_data(std::string_view input) {
  // Written as a subtraction: bulk_length_ can be up to max_bulk_length, input small.
  if (input.size() - pos_ < 2 || input.size() - pos_ - 2 < bulk_length_) return {};
  const size_t end = pos_ + bulk_length_;
  if (input[end] != '\r' || input[end + 1] != '\n') return fail(std::string(kMissingBulkCrlf));
  slices_.push_back({pos_, bulk_length_});
  pos_ = end + 2;
  scan_ = pos_;
  if (--remaining_ == 0) return complete(input, pos_);
  state_ = State::kBulkLength;
  return {};
}

ParseResult CommandParser::parse_inline(std::string_view input) {
  const size_t from = std::max(scan_, pos_);
  const void* lf =
      from < input.size() ? std::memchr(input.data() + from, '\n', input.size() - from) : nullptr;
  if (lf == nullptr) {
    scan_ = input.size();
    if (input.size() - pos_ > limits_.max_inline_size) return fail(std::string(kTooBigInline));
    return {};
  }
  const size_t n = static_cast<const char*>(lf) - input.data();
  if (n - pos_ > limits_.max_inline_size) return fail(std::string(kTooBigInline));
  std::string_view line = input.substr(pos_, n - pos_);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!internal::split_inline_args(line, &inline_storage_, &slices_)) {
    return fail(std::string(kUnbalancedQuotes));
  }
  return complete(input, n + 1);
}

ParseResult CommandParser::complete(std::string_view input, size_t end) {
  // Views are made only now: the input may have moved between calls, and inline_storage_ may
  // have grown while arguments were appended.
  const std::string_view base = inline_ ? std::string_view(inline_storage_) : input;
  args_.clear();
  args_.reserve(slices_.size());
  for (const internal::ArgSlice& s : slices_) args_.push_back(base.substr(s.offset, s.length));
  state_ = State::kComplete;
  return {.status = ParseStatus::kCommand, .consumed = end};
}

}  // namespace shardloop::resp
