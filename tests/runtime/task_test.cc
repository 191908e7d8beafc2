// Task<T> on its own, driven on the test thread (no worker): laziness, values through await
// chains, exception propagation, frame destruction, and symmetric transfer keeping deep or
// long await chains off the stack.
#include "runtime/task.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

using testing::run_sync;

Task<int> value(int v) { co_return v; }

Task<int> add_two_awaited() {
  int a = co_await value(20);
  int b = co_await value(22);
  co_return a + b;
}

Task<int> three_levels() { co_return co_await add_two_awaited() + 1; }

TEST(TaskTest, AwaitChainReturnsValues) {
  EXPECT_EQ(run_sync(value(7)), 7);
  EXPECT_EQ(run_sync(add_two_awaited()), 42);
  EXPECT_EQ(run_sync(three_levels()), 43);
}

Task<std::unique_ptr<std::string>> make_owned(std::string s) {
  co_return std::make_unique<std::string>(std::move(s));
}

Task<std::string> unwrap_owned() {
  std::unique_ptr<std::string> p = co_await make_owned("move-only");
  co_return *p + "!";
}

TEST(TaskTest, MoveOnlyResults) { EXPECT_EQ(run_sync(unwrap_owned()), "move-only!"); }

Task<void> append(std::vector<int>* out, int v) {
  out->push_back(v);
  co_return;
}

Task<void> append_three(std::vector<int>* out) {
  co_await append(out, 1);
  co_await append(out, 2);
  co_await append(out, 3);
}

TEST(TaskTest, VoidTasksRunInAwaitOrder) {
  std::vector<int> out;
  run_sync(append_three(&out));
  EXPECT_EQ(out, (std::vector<int>{1, 2, 3}));
}

TEST(TaskTest, TaskIsLazy) {
  std::vector<int> out;
  Task<void> t = append(&out, 1);
  EXPECT_TRUE(t.valid());
  EXPECT_TRUE(out.empty()) << "the body ran before the task was awaited";
  run_sync(std::move(t));
  EXPECT_EQ(out, (std::vector<int>{1}));
}

// Sets a flag when destroyed, to observe frame destruction.
struct DestructionFlag {
  bool* destroyed;
  explicit DestructionFlag(bool* d) : destroyed(d) {}
  DestructionFlag(DestructionFlag&& o) noexcept : destroyed(std::exchange(o.destroyed, nullptr)) {}
  ~DestructionFlag() {
    if (destroyed != nullptr) *destroyed = true;
  }
};

Task<int> holds_flag(DestructionFlag flag, bool* ran) {
  *ran = true;
  co_return 1;
}

TEST(TaskTest, DestroyingAnUnstartedTaskDestroysItsFrame) {
  bool destroyed = false, ran = false;
  {
    Task<int> t = holds_flag(DestructionFlag(&destroyed), &ran);
    EXPECT_FALSE(destroyed);
  }
  EXPECT_TRUE(destroyed);
  EXPECT_FALSE(ran);
}

TEST(TaskTest, MoveAssignmentDestroysTheOverwrittenFrame) {
  bool destroyed_a = false, destroyed_b = false, ran = false;
  Task<int> a = holds_flag(DestructionFlag(&destroyed_a), &ran);
  Task<int> b = holds_flag(DestructionFlag(&destroyed_b), &ran);
  a = std::move(b);
  EXPECT_TRUE(destroyed_a);
  EXPECT_FALSE(destroyed_b);
  EXPECT_FALSE(b.valid());
  EXPECT_EQ(run_sync(std::move(a)), 1);
  EXPECT_TRUE(destroyed_b);
}

Task<int> throws_runtime_error() {
  throw std::runtime_error("boom");
  co_return 0;
}

Task<int> rethrows_through_a_level() { co_return co_await throws_runtime_error() + 1; }

Task<std::string> catches() {
  try {
    co_await rethrows_through_a_level();
  } catch (const std::runtime_error& e) {
    co_return std::string("caught: ") + e.what();
  }
  co_return "not thrown";
}

TEST(TaskTest, ExceptionPropagatesToTheAwaiter) {
  EXPECT_EQ(run_sync(catches()), "caught: boom");
  EXPECT_THROW(run_sync(rethrows_through_a_level()), std::runtime_error);
}

Task<void> throws_int() {
  throw 42;
  co_return;
}

TEST(TaskTest, NonStandardExceptionPropagates) {
  try {
    run_sync(throws_int());
    FAIL() << "no exception";
  } catch (int v) {
    EXPECT_EQ(v, 42);
  }
}

Task<int> after_exception() {
  int sum = 0;
  for (int i = 0; i < 3; ++i) {
    bool caught = false;
    try {
      co_await throws_runtime_error();
    } catch (const std::runtime_error&) {
      caught = true;  // (co_await is not allowed inside a handler)
    }
    if (caught) sum += co_await value(10);
  }
  co_return sum;
}

TEST(TaskTest, AwaiterKeepsWorkingAfterCatching) { EXPECT_EQ(run_sync(after_exception()), 30); }

// --- stack use ---------------------------------------------------------------------------------
//
// A task that completes synchronously returns into its awaiter's await_suspend (task.h), so a
// loop of such awaits uses constant stack in every build; nested awaits use stack in proportion
// to their depth.

// An address in the caller's current stack frame.
[[gnu::noinline]] uintptr_t stack_address() {
  return reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
}

Task<uintptr_t> stack_address_after_loop(int n) {
  for (int i = 0; i < n; ++i) co_await value(i);
  co_return stack_address();
}

Task<long> long_loop(int n) {
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await value(1);
  co_return sum;
}

TEST(TaskTest, LongLoopOfSynchronousAwaitsDoesNotGrowTheStack) {
  const uintptr_t none = run_sync(stack_address_after_loop(0));
  const uintptr_t many = run_sync(stack_address_after_loop(2000));
  EXPECT_EQ(none, many) << "each synchronously completed await left a frame behind";
  constexpr int kIterations = 1'000'000;
  EXPECT_EQ(run_sync(long_loop(kIterations)), kIterations);
}

Task<int> nested(int depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await nested(depth - 1);
}

// Nesting costs stack per level while the whole chain runs synchronously; a few thousand
// levels fit comfortably in every build.
TEST(TaskTest, NestedAwaitChainOfAFewThousandLevels) {
  constexpr int kDepth = 5'000;
  EXPECT_EQ(run_sync(nested(kDepth)), kDepth);
}

TEST(TaskTest, IsTaskTrait) {
  static_assert(is_task<Task<int>>::value);
  static_assert(std::is_same_v<is_task<Task<int>>::value_type, int>);
  static_assert(is_task<Task<void>>::value);
  static_assert(!is_task<int>::value);
}

}  // namespace
}  // namespace shardloop
