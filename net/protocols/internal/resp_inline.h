// Splits a RESP inline command line into arguments with redis-server's quoting rules (those of
// its sdssplitargs): blanks separate arguments; "double quotes" take \n \r \t \b \a \xHH and
// \<any> escapes; 'single quotes' take only \'; a closing quote must be followed by a blank or
// the end of the line; a quote inside an unquoted argument opens a quoted part that ends it
// (a"b c" is the one argument `ab c`). Unlike sdssplitargs, NUL is an ordinary byte.
//
// Thread-safety: a pure function.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace shardloop::resp::internal {

struct ArgSlice {
  size_t offset;  // into the storage string
  size_t length;
};

// Appends each argument's unescaped bytes to *storage and its place there to *args. Returns
// false (leaving partial output) when a quote is unbalanced or a closing quote is followed by
// something other than a blank.
bool split_inline_args(std::string_view line, std::string* storage, std::vector<ArgSlice>* args);

}  // namespace shardloop::resp::internal
