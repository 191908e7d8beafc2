// Command-line helpers shared by the example and benchmark binaries.
#pragma once

#include <string>

namespace shardloop::cli {

// gflags spells flags with underscores; this lets users type `--message-size` as well as
// `--message_size` by rewriting dashes in the flag *name* (never in its value) in place.
inline void accept_dashed_flags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 3 || arg.substr(0, 2) != "--") continue;
    for (char* p = argv[i] + 2; *p != '\0' && *p != '='; ++p) {
      if (*p == '-') *p = '_';
    }
  }
}

}  // namespace shardloop::cli
