#include "net/protocols/internal/resp_inline.h"

#include "net/protocols/internal/ascii.h"

namespace shardloop::resp::internal {
namespace {

// Blanks between arguments: C isspace() in the "C" locale, as sdssplitargs skips them.
bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// The byte a backslash escape inside double quotes stands for: \n \r \t \b \a, else itself.
char unescape(char c) {
  switch (c) {
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    case 'b':
      return '\b';
    case 'a':
      return '\a';
    default:
      return c;
  }
}

// What ends an unquoted argument. Narrower than is_blank (no \v, \f): so does sdssplitargs.
bool ends_unquoted(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

bool split_inline_args(std::string_view line, std::string* storage, std::vector<ArgSlice>* args) {
  using shardloop::protocols::internal::hex_value;
  size_t i = 0;
  const size_t n = line.size();
  for (;;) {
    while (i < n && is_blank(line[i])) ++i;
    if (i == n) return true;

    const size_t start = storage->size();
    enum class Mode { kBare, kDouble, kSingle } mode = Mode::kBare;
    bool done = false;
    while (!done) {
      if (mode == Mode::kDouble) {
        if (i == n) return false;  // unterminated "
        const char c = line[i];
        if (c == '\\' && i + 3 < n && line[i + 1] == 'x' && hex_value(line[i + 2]) >= 0 &&
            hex_value(line[i + 3]) >= 0) {
          storage->push_back(
              static_cast<char>(hex_value(line[i + 2]) * 16 + hex_value(line[i + 3])));
          i += 4;
        } else if (c == '\\' && i + 1 < n) {
          storage->push_back(unescape(line[i + 1]));
          i += 2;
        } else if (c == '"') {
          if (i + 1 < n && !is_blank(line[i + 1])) return false;
          ++i;
          done = true;
        } else {
          storage->push_back(c);
          ++i;
        }
      } else if (mode == Mode::kSingle) {
        if (i == n) return false;  // unterminated '
        const char c = line[i];
        if (c == '\\' && i + 1 < n && line[i + 1] == '\'') {
          storage->push_back('\'');
          i += 2;
        } else if (c == '\'') {
          if (i + 1 < n && !is_blank(line[i + 1])) return false;
          ++i;
          done = true;
        } else {
          storage->push_back(c);
          ++i;
        }
      } else {
        if (i == n || ends_unquoted(line[i])) {
          done = true;
        } else if (line[i] == '"') {
          mode = Mode::kDouble;
          ++i;
        } else if (line[i] == '\'') {
          mode = Mode::kSingle;
          ++i;
        } else {
          storage->push_back(line[i]);
          ++i;
        }
      }
    }
    args->push_back({start, storage->size() - start});
  }
}

}  // namespace shardloop::resp::internal
