// Task<T>: a lazily started coroutine that produces a T.
//
// A Task does nothing until it is awaited (co_await task) or handed to spawn(). Awaiting it runs
// it at once, inside the awaiter's await_suspend, until it first suspends or finishes:
// - finished (it never had to wait): await_suspend returns false and the awaiter simply goes
//   on, with the stack back where it was. A loop of a million awaits that complete
//   synchronously therefore uses constant stack in every build. (Symmetric transfer would need
//   the compiler to make each resumption a tail call, which GCC 12 does only at -O2 without
//   sanitizers; a request loop in a debug or sanitizer build would overflow the stack.)
// - suspended: the awaiter suspends too; when the task later finishes, its final_suspend
//   transfers control to the awaiter.
// The price: awaits *nested* inside each other use stack in proportion to their depth while
// they all run synchronously (a few hundred bytes a level), so deep recursion of tasks should
// be turned into a loop.
// Exceptions thrown inside propagate to the awaiter. Destroying a Task that never ran, or that
// is suspended, destroys its frame (and, recursively, the frames it is awaiting).
//
// Thread-safety: a Task is owned by one worker; it is created, awaited and destroyed there.
// Awaitables in this library (sleep_for, I/O, submit_to) always resume the coroutine on the
// worker it suspended on.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

namespace shardloop {

template <typename T = void>
class Task;

namespace internal {

struct RootPromise;

// The root task a coroutine runs under, for any coroutine handle: what a task inherits from
// its awaiter when awaited, and what an I/O awaiter records so that a connection can move
// to another worker together with the task waiting on it. nullptr for coroutines that are not
// tasks (and for a task not awaited under a root).
template <typename P>
RootPromise* root_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (requires { h.promise().root; }) {
    return h.promise().root;
  } else {
    return nullptr;
  }
}

struct TaskPromiseBase {
  std::coroutine_handle<> continuation = std::noop_coroutine();
  RootPromise* root = nullptr;  // inherited from the awaiter (root_of)
  std::exception_ptr exception;
  // True while the awaiter's await_suspend is running this task (see the file comment): a
  // task that finishes then returns to that call instead of resuming the awaiter itself.
  bool started_inline = false;

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <typename Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
      auto& p = h.promise();
      return p.started_inline ? std::noop_coroutine() : p.continuation;
    }
    void await_resume() noexcept {}
  };

  std::suspend_always initial_suspend() noexcept { return {}; }
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { exception = std::current_exception(); }
};

template <typename T>
struct TaskPromise : TaskPromiseBase {
  std::optional<T> value;
  Task<T> get_return_object() noexcept;
  template <typename U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
  T take() {
    if (exception) std::rethrow_exception(exception);
    return std::move(*value);
  }
};

template <>
struct TaskPromise<void> : TaskPromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() {
    if (exception) std::rethrow_exception(exception);
  }
};

}  // namespace internal

template <typename T>
class [[nodiscard]] Task {
 public:
  using promise_type = internal::TaskPromise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  explicit Task(Handle h) : h_(h) {}
  Task(Task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (h_) h_.destroy();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  bool valid() const { return static_cast<bool>(h_); }

  // Awaiting a task runs it inline (see the file comment); the task inherits its awaiter's root.
  struct Awaiter {
    Handle h;
    bool await_ready() noexcept { return h.done(); }
    template <typename P>
    bool await_suspend(std::coroutine_handle<P> awaiter) noexcept {
      auto& p = h.promise();
      p.continuation = awaiter;
      p.root = internal::root_of(awaiter);
      p.started_inline = true;
      h.resume();  // runs until the task first suspends or finishes
      p.started_inline = false;
      return !h.done();  // finished: the awaiter goes on without suspending
    }
    T await_resume() { return h.promise().take(); }
  };
  Awaiter operator co_await() && noexcept { return Awaiter{h_}; }

  // Gives up ownership of the frame (spawn() uses this).
  Handle release() { return std::exchange(h_, {}); }

 private:
  Handle h_;
};

namespace internal {
template <typename T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}
inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}
}  // namespace internal

template <typename T>
struct is_task : std::false_type {};
template <typename T>
struct is_task<Task<T>> : std::true_type {
  using value_type = T;
};

}  // namespace shardloop
