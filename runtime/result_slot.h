// ResultSlot<T>: where an awaiter that runs work elsewhere keeps the value or the exception
// until the awaiting coroutine resumes (submit_to, offload); CallerReply<T> adds who to resume
// and where. Not thread-safe by themselves: the awaiters hand them from the thread that fills
// them to the one that reads them through an inbox message, whose mutex orders the two.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

#include "runtime/worker.h"

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

// The way back for work that ran on another worker (or was stolen): the result, and the
// suspended caller to resume on its own worker.
template <typename T>
struct CallerReply {
  ResultSlot<T> slot;
  Worker* origin = nullptr;
  std::coroutine_handle<> caller = nullptr;

  // Posts the caller's resumption to its worker's inbox. Reads the members first: once the
  // message is posted the caller may resume and destroy the awaiter that holds this object.
  void resume_caller() {
    Worker* to = origin;
    std::coroutine_handle<> resume = caller;
    to->post([resume] { resume.resume(); });
  }
};

}  // namespace shardloop::internal
