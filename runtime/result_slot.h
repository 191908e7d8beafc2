// ResultSlot<T>: where an awaiter that runs work elsewhere keeps the value or the exception
// until the awaiting coroutine resumes (submit_to, offload). Not thread-safe by itself: the
// awaiters hand it from the thread that fills it to the one that reads it through an inbox
// message, whose mutex orders the two.
#pragma once

#include <exception>
#include <optional>
#include <utility>

namespace shardloop::internal {

template <typename T>
struct ResultSlot {
  std::optional<T> value;
  std::exception_ptr error;
  template <typename G>
  void run(G&& g) {
    try {
      value.emplace(std::forward<G>(g)());
    } catch (...) {
      error = std::current_exception();
    }
  }
  T take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

template <>
struct ResultSlot<void> {
  std::exception_ptr error;
  template <typename G>
  void run(G&& g) {
    try {
      std::forward<G>(g)();
    } catch (...) {
      error = std::current_exception();
    }
  }
  void take() {
    if (error) std::rethrow_exception(error);
  }
};

}  // namespace shardloop::internal
