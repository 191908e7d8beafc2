// errno_status(): an absl::Status for a failed system call.
//
// The code is absl::ErrnoToStatusCode(err); the message is "what: <description> (errno N)".
// Unlike absl::ErrnoToStatus, the description comes straight from glibc (strerrordesc_np, static
// strings, safe from any thread) instead of Abseil's lazily built table: the Debian Abseil
// library is built without ThreadSanitizer instrumentation, so TSan cannot see that table's
// initialisation as synchronised and reports races in every sanitizer run.
//
// Thread-safety: any thread.
#pragma once

#include <string.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace shardloop {

inline const char* errno_description(int err) {
  const char* d = ::strerrordesc_np(err);
  return d != nullptr ? d : "unknown error";
}

inline absl::Status errno_status(int err, absl::string_view what) {
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat(what, ": ", errno_description(err), " (errno ", err, ")"));
}

}  // namespace shardloop
