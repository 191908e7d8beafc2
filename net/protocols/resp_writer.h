// RESP2 encoder: replies a Redis-compatible server sends (simple string, error, integer, bulk,
// null bulk, array) and the command form a client sends (an array of bulk strings). Appends to
// a std::string, the usual output buffer of a connection, so that a batch of pipelined replies
// goes out in one write.
//
// Thread-safety: ReplyWriter is a thin handle over one output string; use it where the string
// is owned. append_command is pure apart from its output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/types/span.h"

namespace shardloop::resp {

class ReplyWriter {
 public:
  explicit ReplyWriter(std::string* out) : out_(out) {}

  // "+OK\r\n". CR and LF in `s` become spaces: a simple string cannot carry them (redis
  // sanitizes the same way).
  void simple_string(std::string_view s);
  // "-ERR <message>\r\n", or "-<message>\r\n" when `message` starts with '-' and so carries its
  // own code ("-WRONGTYPE ..."): redis's addReplyError convention. CR and LF become spaces.
  // A parser's protocol error goes out as error(parse_result.error).
  void error(std::string_view message);
  void integer(int64_t value);
  void bulk(std::string_view s);
  void null_bulk();  // "$-1\r\n"
  // The header of an array of `count` elements; the caller then writes the elements.
  void array(size_t count);
  void null_array();  // "*-1\r\n"

 private:
  void line(std::string_view prefix, std::string_view s);
  void number_line(char prefix, int64_t value);

  std::string* out_;
};

// Appends `args` as a multibulk command (`*N` and N bulk strings), what redis clients send.
void append_command(absl::Span<const std::string_view> args, std::string* out);

}  // namespace shardloop::resp
