// Worker awaitables: sleep_for / sleep_until, yield_now and submit_to. Above all, a coroutine
// always resumes on the worker (and thread) it suspended on, whichever worker did the work.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/submit.h"
#include "runtime/worker.h"
#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

using namespace std::chrono_literals;

using testing::workers;

template <typename T>
T get_within_patience(std::future<T>& f) {
  if (f.wait_for(testing::kPatience) != std::future_status::ready) {
    ADD_FAILURE() << "timed out waiting for the coroutine";
    throw std::runtime_error("timeout");
  }
  return f.get();
}

// Where the coroutine found itself after each co_await.
struct Place {
  size_t worker = ~size_t{0};
  bool same_thread = false;
};

struct OwnerTrace {
  std::vector<Place> after_await;
  int remote_index = -1;
  bool void_fn_ran = false;
};

Task<void> hop_around(OwnerTrace* trace, std::promise<void>* done) {
  const std::thread::id thread = std::this_thread::get_id();
  auto where = [&] {
    trace->after_await.push_back(
        Place{Worker::current()->index(), std::this_thread::get_id() == thread});
  };

  co_await sleep_for(1ms);
  where();

  trace->remote_index =
      co_await submit_to(1, [] { return static_cast<int>(Worker::current()->index()); });
  where();

  co_await submit_to(1, [trace] { trace->void_fn_ran = true; });  // void result
  where();

  co_await yield_now();
  where();

  done->set_value();
}

TEST(AwaitablesTest, CoroutineResumesOnItsOwnerAfterEveryAwait) {
  Runtime rt(workers(2));
  ASSERT_TRUE(rt.start().ok());
  OwnerTrace trace;
  std::promise<void> done;
  auto future = done.get_future();
  rt.spawn_on(0, [&] { return hop_around(&trace, &done); });
  get_within_patience(future);

  EXPECT_EQ(trace.remote_index, 1) << "submit_to(1, fn) ran fn elsewhere";
  EXPECT_TRUE(trace.void_fn_ran);
  ASSERT_EQ(trace.after_await.size(), 4u);
  const char* what[] = {"sleep_for", "submit_to(fn)", "submit_to(void fn)", "yield_now"};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(trace.after_await[i].worker, 0u) << "after " << what[i];
    EXPECT_TRUE(trace.after_await[i].same_thread) << "after " << what[i];
  }
  rt.stop();
}

Task<void> submit_failures(std::vector<std::string>* caught, std::vector<size_t>* where,
                           std::promise<void>* done) {
  try {
    co_await submit_to(1, []() -> int { throw std::runtime_error("remote fn"); });
  } catch (const std::runtime_error& e) {
    caught->push_back(e.what());
  }
  where->push_back(Worker::current()->index());

  try {
    co_await submit_to(1, [] { throw std::logic_error("remote void fn"); });
  } catch (const std::logic_error& e) {
    caught->push_back(e.what());
  }
  where->push_back(Worker::current()->index());

  done->set_value();
}

TEST(AwaitablesTest, SubmitToRethrowsTheTargetsExceptionOnTheCaller) {
  Runtime rt(workers(2));
  ASSERT_TRUE(rt.start().ok());
  std::vector<std::string> caught;
  std::vector<size_t> where;
  std::promise<void> done;
  auto future = done.get_future();
  rt.spawn_on(0, [&] { return submit_failures(&caught, &where, &done); });
  get_within_patience(future);

  EXPECT_EQ(caught, (std::vector<std::string>{"remote fn", "remote void fn"}));
  EXPECT_EQ(where, (std::vector<size_t>{0, 0}));
  // The exceptions were delivered, not left uncaught on worker 1.
  EXPECT_EQ(rt.worker(1).stats().uncaught_exceptions, 0u);
  EXPECT_EQ(rt.worker(0).stats().uncaught_exceptions, 0u);
  rt.stop();
}

// submit_to(w, fn) where fn returns a Task: the task runs as a root of w and its result comes
// back to the caller's worker.
struct TaskSubmitTrace {
  std::vector<Place> after_await;
  int value = -1;
  int ran_on = -1;
  int void_ran_on = -1;
  int self_value = -1;
  std::string caught;
};

Task<void> submit_tasks(TaskSubmitTrace* trace, std::promise<void>* done) {
  const std::thread::id thread = std::this_thread::get_id();
  auto where = [&] {
    trace->after_await.push_back(
        Place{Worker::current()->index(), std::this_thread::get_id() == thread});
  };

  trace->value = co_await submit_to(1, [trace]() -> Task<int> {
    co_await sleep_for(1ms);  // suspends on worker 1, resumes there
    trace->ran_on = static_cast<int>(Worker::current()->index());
    co_return 77;
  });
  where();

  co_await submit_to(1, [trace]() -> Task<void> {
    co_await yield_now();
    trace->void_ran_on = static_cast<int>(Worker::current()->index());
  });
  where();

  try {
    co_await submit_to(1, []() -> Task<int> {
      co_await yield_now();
      throw std::out_of_range("remote task");
      co_return 0;
    });
  } catch (const std::out_of_range& e) {
    trace->caught = e.what();
  }
  where();

  trace->self_value = co_await submit_to(0, []() -> Task<int> { co_return 5; });
  where();
  done->set_value();
}

TEST(AwaitablesTest, SubmitToWithATaskReturningFunction) {
  Runtime rt(workers(2));
  ASSERT_TRUE(rt.start().ok());
  TaskSubmitTrace trace;
  std::promise<void> done;
  auto future = done.get_future();
  rt.spawn_on(0, [&] { return submit_tasks(&trace, &done); });
  get_within_patience(future);

  EXPECT_EQ(trace.value, 77);
  EXPECT_EQ(trace.ran_on, 1) << "the submitted task did not run on worker 1";
  EXPECT_EQ(trace.void_ran_on, 1);
  EXPECT_EQ(trace.caught, "remote task");
  EXPECT_EQ(trace.self_value, 5);
  ASSERT_EQ(trace.after_await.size(), 4u);
  for (size_t i = 0; i < trace.after_await.size(); ++i) {
    EXPECT_EQ(trace.after_await[i].worker, 0u) << "after await #" << i;
    EXPECT_TRUE(trace.after_await[i].same_thread) << "after await #" << i;
  }
  EXPECT_EQ(rt.worker(1).stats().uncaught_exceptions, 0u);
  rt.stop();
}

Task<void> submit_to_self(std::thread::id* ran_on, size_t* result, std::promise<void>* done) {
  *result = co_await submit_to(0, [ran_on] {
    *ran_on = std::this_thread::get_id();
    return Worker::current()->index();
  });
  done->set_value();
}

TEST(AwaitablesTest, SubmitToOwnWorker) {
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  std::thread::id ran_on;
  size_t result = 99;
  std::promise<void> done;
  auto future = done.get_future();
  rt.spawn_on(0, [&] { return submit_to_self(&ran_on, &result, &done); });
  get_within_patience(future);
  EXPECT_EQ(result, 0u);
  EXPECT_EQ(ran_on, rt.call_on(0, [] { return std::this_thread::get_id(); }));
  rt.stop();
}

Task<void> count_remotely(int n, int* remote_counter, int* observed, std::promise<void>* done) {
  for (int i = 0; i < n; ++i) {
    // The counter belongs to worker 1 and is only ever touched there.
    *observed = co_await submit_to(1, [remote_counter] { return ++*remote_counter; });
    co_await submit_to(1, [remote_counter] { (void)*remote_counter; });  // void result
  }
  done->set_value();
}

TEST(AwaitablesTest, ManySequentialSubmitsFromTwoWorkers) {
  const int kRounds = 500 / testing::kSanitizerScale;
  Runtime rt(workers(3));
  ASSERT_TRUE(rt.start().ok());
  int remote_counter = 0;  // worker 1 only
  int observed_a = 0, observed_b = 0;
  std::promise<void> done_a, done_b;
  auto fa = done_a.get_future();
  auto fb = done_b.get_future();
  rt.spawn_on(0, [&] { return count_remotely(kRounds, &remote_counter, &observed_a, &done_a); });
  rt.spawn_on(2, [&] { return count_remotely(kRounds, &remote_counter, &observed_b, &done_b); });
  get_within_patience(fa);
  get_within_patience(fb);
  EXPECT_EQ(rt.call_on(1, [&] { return remote_counter; }), 2 * kRounds);
  EXPECT_EQ(std::max(observed_a, observed_b), 2 * kRounds);
  rt.stop();
}

Task<void> yielder(std::vector<std::string>* log, std::promise<void>* done) {
  log->push_back("A1");
  co_await yield_now();
  log->push_back("A2");
  done->set_value();
}

Task<void> no_yield(std::vector<std::string>* log) {
  log->push_back("A1");
  log->push_back("A2");
  co_return;
}

Task<void> other(std::vector<std::string>* log, std::promise<void>* done) {
  log->push_back("B");
  if (done != nullptr) done->set_value();
  co_return;
}

TEST(AwaitablesTest, YieldNowLetsAnotherTaskRunInBetween) {
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());

  std::vector<std::string> log;  // touched on the worker, read after the futures
  std::promise<void> a_done;
  auto a_future = a_done.get_future();
  rt.call_on(0, [&] {
    spawn(yielder(&log, &a_done));
    spawn(other(&log, nullptr));
  });
  get_within_patience(a_future);
  EXPECT_EQ(log, (std::vector<std::string>{"A1", "B", "A2"}));

  // Control: without the yield, A runs to completion first.
  std::vector<std::string> control;
  std::promise<void> b_done;
  auto b_future = b_done.get_future();
  rt.call_on(0, [&] {
    spawn(no_yield(&control));
    spawn(other(&control, &b_done));
  });
  get_within_patience(b_future);
  EXPECT_EQ(control, (std::vector<std::string>{"A1", "A2", "B"}));
  rt.stop();
}

Task<void> timed_sleep(Clock::duration d, Clock::duration* slept, std::promise<void>* done) {
  const TimePoint start = Clock::now();
  co_await sleep_for(d);
  *slept = Clock::now() - start;
  done->set_value();
}

TEST(AwaitablesTest, SleepForLastsAtLeastItsDuration) {
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  Clock::duration slept{};
  std::promise<void> done;
  auto future = done.get_future();
  rt.spawn_on(0, [&] { return timed_sleep(20ms, &slept, &done); });
  get_within_patience(future);
  EXPECT_GE(slept, 20ms);
  rt.stop();
}

Task<void> sleep_then_log(Clock::duration d, int tag, std::vector<int>* log) {
  co_await sleep_for(d);
  log->push_back(tag);
}

TEST(AwaitablesTest, SleepersWakeInDeadlineOrder) {
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  std::vector<int> log;  // worker only
  rt.call_on(0, [&] {
    spawn(sleep_then_log(60ms, 3, &log));
    spawn(sleep_then_log(20ms, 1, &log));
    spawn(sleep_then_log(40ms, 2, &log));
  });
  ASSERT_TRUE(testing::wait_until([&] { return rt.live_tasks() == 0; }));
  EXPECT_EQ(rt.call_on(0, [&] { return log; }), (std::vector<int>{1, 2, 3}));
  rt.stop();
}

Task<void> past_deadline(uint64_t* timers_added, std::promise<void>* done) {
  Worker* w = Worker::current();
  const uint64_t before = w->stats().timers_fired;
  co_await sleep_until(Clock::now() - 1s);  // already due: does not suspend
  co_await sleep_for(0ms);
  *timers_added = w->stats().timers_fired - before;
  done->set_value();
}

TEST(AwaitablesTest, SleepWithAPastDeadlineDoesNotSuspend) {
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  uint64_t timers = 99;
  std::promise<void> done;
  auto future = done.get_future();
  rt.spawn_on(0, [&] { return past_deadline(&timers, &done); });
  get_within_patience(future);
  EXPECT_EQ(timers, 0u);
  rt.stop();
}

TEST(AwaitablesTest, SpawnOnKeepsACoroutineLambdasCapturesAlive) {
  // spawn_on keeps the factory alive until the task finishes, so a coroutine lambda may use its
  // captures after suspending (ASan would flag a use after free otherwise).
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  std::promise<std::string> done;
  auto future = done.get_future();
  rt.spawn_on(0, [text = std::string(100, 'x'), &done]() -> Task<void> {
    co_await sleep_for(1ms);
    co_await yield_now();
    done.set_value(text);
  });
  EXPECT_EQ(get_within_patience(future), std::string(100, 'x'));
  rt.stop();
}

TEST(AwaitablesTest, ManyConcurrentSleepersAllFinish) {
  const int kTasks = 200 / testing::kSanitizerScale;
  Runtime rt(workers(2));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<int> finished{0};
  for (int i = 0; i < kTasks; ++i) {
    rt.spawn_on(i % 2, [i, &finished]() -> Task<void> {
      co_await sleep_for(std::chrono::milliseconds(i % 17));
      co_await yield_now();
      co_await sleep_for(std::chrono::microseconds(i % 5 * 100));
      finished.fetch_add(1);
    });
  }
  EXPECT_TRUE(testing::wait_until([&] { return finished.load() == kTasks; }))
      << finished.load() << " of " << kTasks;
  rt.stop();
}

}  // namespace
}  // namespace shardloop
