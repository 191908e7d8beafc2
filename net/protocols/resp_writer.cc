#include "net/protocols/resp_writer.h"

#include <charconv>

namespace shardloop::resp {

void ReplyWriter::line(std::string_view prefix, std::string_view s) {
  out_->reserve(out_->size() + prefix.size() + s.size() + 2);
  out_->append(prefix);
  const size_t start = out_->size();
  out_->append(s);
  for (size_t i = start; i < out_->size(); ++i) {
    char& c = (*out_)[i];
    if (c == '\r' || c == '\n') c = ' ';
  }
  out_->append("\r\n");
}

void ReplyWriter::number_line(char prefix, int64_t value) {
  char buf[24];
  buf[0] = prefix;
  const auto r = std::to_chars(buf + 1, buf + sizeof(buf), value);
  out_->append(buf, r.ptr);
  out_->append("\r\n");
}

void ReplyWriter::simple_string(std::string_view s) { line("+", s); }

void ReplyWriter::error(std::string_view message) {
  if (!message.empty() && message.front() == '-') {
    line("-", message.substr(1));
  } else {
    line("-ERR ", message);
  }
}

void ReplyWriter::integer(int64_t value) { number_line(':', value); }

void ReplyWriter::bulk(std::string_view s) {
  number_line('$', static_cast<int64_t>(s.size()));
  out_->append(s);
  out_->append("\r\n");
}

void ReplyWriter::null_bulk() { out_->append("$-1\r\n"); }

void ReplyWriter::array(size_t count) { number_line('*', static_cast<int64_t>(count)); }

void ReplyWriter::null_array() { out_->append("*-1\r\n"); }

void append_command(absl::Span<const std::string_view> args, std::string* out) {
  ReplyWriter w(out);
  w.array(args.size());
  for (std::string_view a : args) w.bulk(a);
}

}  // namespace shardloop::resp
