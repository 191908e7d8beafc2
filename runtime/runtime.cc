#include "runtime/runtime.h"

#include <sched.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "runtime/log.h"
#include "runtime/shared_epoll.h"

namespace shardloop {

std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  if (cpus.empty()) {
    unsigned n = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned c = 0; c < n; ++c) cpus.push_back(static_cast<int>(c));
  }
  return cpus;
}

Runtime::Runtime(RuntimeOptions options) : options_(options) {}

Runtime::~Runtime() {
  stop();
  run_stop_hooks();  // for a runtime that never ran (no-op after a stop)
  // Workers first: destroying their unrun messages may still touch this runtime's counters.
  workers_.clear();
  MutexLock lock(&companions_mu_);
  companions_.clear();
}

absl::Status Runtime::start() {
  if (state_.load(std::memory_order_acquire) != State::kNew) {
    return absl::FailedPreconditionError("a Runtime can be started only once");
  }
  if (uses_shared_epoll(options_.poll_mode) && options_.backend == Backend::kIoUring) {
    return absl::InvalidArgumentError(absl::StrCat("poll mode '",
                                                   std::string(poll_mode_name(options_.poll_mode)),
                                                   "' shares one epoll instance between workers "
                                                   "and needs the epoll backend, not io_uring"));
  }
  absl::StatusOr<Backend> backend = uses_shared_epoll(options_.poll_mode)
                                        ? absl::StatusOr<Backend>(Backend::kEpoll)
                                        : resolve_backend(options_.backend);
  if (!backend.ok()) return backend.status();
  std::vector<int> cpus = allowed_cpus();
  size_t n = options_.workers != 0 ? options_.workers : cpus.size();
  if (uses_shared_epoll(options_.poll_mode)) {
    if (n > SharedEpoll::kMaxWorkers) {
      return absl::InvalidArgumentError(
          absl::StrCat("poll mode '", std::string(poll_mode_name(options_.poll_mode)),
                       "' supports at most ", SharedEpoll::kMaxWorkers, " workers, not ", n));
    }
    auto shared = SharedEpoll::create(options_.poll_mode);
    if (!shared.ok()) return shared.status();
    shared_epoll_ = std::move(*shared);
  }
  steal_coordinator_ = std::make_unique<StealCoordinator>(n);
  spin_gate_ = std::make_unique<SpinGate>(cpus.size(), n);
  for (size_t i = 0; i < n; ++i) {
    int cpu = options_.pin_cpus ? cpus[i % cpus.size()] : -1;
    workers_.push_back(std::unique_ptr<Worker>(new Worker(*this, i, n, *backend, cpu)));
  }
  {
    MutexLock lock(&loops_mu_);
    loops_running_ = n;
  }
  for (auto& w : workers_) w->thread_ = std::thread([worker = w.get()] { worker->thread_main(); });
  absl::Status init_status;
  {
    MutexLock lock(&init_mu_);
    init_cv_.wait(init_mu_, [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return init_reported_ == workers_.size();
    });
    init_status = init_error_;
  }
  if (!init_status.ok()) {
    // No worker entered its loop; they have all returned already.
    for (auto& w : workers_) w->thread_.join();
    state_.store(State::kStopped, std::memory_order_release);
    return init_status;
  }
  state_.store(State::kRunning, std::memory_order_release);
  return absl::OkStatus();
}

bool Runtime::report_init(absl::Status status) {
  MutexLock lock(&init_mu_);
  if (!status.ok() && init_error_.ok()) init_error_ = status;
  if (++init_reported_ == workers_.size()) {
    init_cv_.notify_all();
  } else {
    init_cv_.wait(init_mu_, [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return init_reported_ == workers_.size();
    });
  }
  return init_error_.ok();
}

void Runtime::stop() {
  State expected = State::kRunning;
  if (!state_.compare_exchange_strong(expected, State::kStopped, std::memory_order_acq_rel)) {
    return;
  }
  for (auto& w : workers_) w->request_stop();
  for (auto& w : workers_) {
    if (w->thread_.joinable()) w->thread_.join();
  }
  run_stop_hooks();
}

void Runtime::run_stop_hooks() {
  std::vector<absl::AnyInvocable<void()>> hooks;
  {
    MutexLock lock(&hooks_mu_);
    stop_hooks_ran_ = true;
    hooks.swap(stop_hooks_);
  }
  for (auto it = hooks.rbegin(); it != hooks.rend(); ++it) (*it)();
}

std::shared_ptr<void> Runtime::companion(const void* key,
                                         absl::FunctionRef<std::shared_ptr<void>()> make) {
  MutexLock lock(&companions_mu_);
  std::shared_ptr<void>& slot = companions_[key];
  if (slot == nullptr) slot = make();
  return slot;
}

void Runtime::add_stop_hook(absl::AnyInvocable<void()> hook) {
  {
    MutexLock lock(&hooks_mu_);
    if (!stop_hooks_ran_) {
      stop_hooks_.push_back(std::move(hook));
      return;
    }
  }
  hook();
}

void Runtime::wait_all_loops_exited() {
  MutexLock lock(&loops_mu_);
  if (--loops_running_ == 0) {
    loops_cv_.notify_all();
    return;
  }
  loops_cv_.wait(loops_mu_,
                 [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return loops_running_ == 0; });
}

DrainReport Runtime::drain(absl::Duration deadline) {
  DrainReport report;
  // Monotonic: a wall-clock step must not cut a drain short or stretch it.
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return absl::FromChrono(std::chrono::steady_clock::now() - start); };
  report.tasks_at_start = live_tasks();
  {
    MutexLock lock(&hooks_mu_);
    for (auto& [id, hook] : hooks_) hook();
  }
  // Polling with a short sleep: drain is rare and its waiter is a controlling thread, so a
  // millisecond of latency is cheaper than a notification on every task exit.
  while (live_tasks() > 0 && elapsed() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  report.tasks_cancelled = live_tasks();
  report.deadline_hit = report.tasks_cancelled > 0;
  stop();
  report.elapsed = elapsed();
  return report;
}

namespace {
// The frame of this coroutine owns `make` until the task it made has finished, so a coroutine
// lambda passed to spawn_on() can keep using its captures after its first suspension.
Task<void> run_owning_factory(absl::AnyInvocable<Task<void>()> make) { co_await make(); }
}  // namespace

namespace {
// Counts a task from the moment spawn_on() is called, so a drain that starts while the spawn
// message is still queued waits for it. If the message is destroyed unrun (the worker stopped
// first), the count is given back.
class PendingSpawn {
 public:
  explicit PendingSpawn(Runtime* rt) : rt_(rt) {}
  PendingSpawn(PendingSpawn&& o) noexcept : rt_(std::exchange(o.rt_, nullptr)) {}
  PendingSpawn& operator=(PendingSpawn&&) = delete;
  ~PendingSpawn() {
    if (rt_ != nullptr) rt_->spawn_abandoned();
  }
  void consumed() { rt_ = nullptr; }

 private:
  Runtime* rt_;
};
}  // namespace

void Runtime::spawn_on(size_t w, absl::AnyInvocable<Task<void>()> make_task) {
  Worker* worker = workers_[w].get();
  task_started();
  worker->post([worker, pending = PendingSpawn(this), make = std::move(make_task)]() mutable {
    pending.consumed();
    worker->spawn(run_owning_factory(std::move(make)), /*already_counted=*/true);
  });
}

void Runtime::spawn(absl::AnyInvocable<Task<void>()> make_task, uint64_t affinity) {
  Worker* current = Worker::current();
  if (current != nullptr && &current->runtime() == this) {
    current->spawn_stealable(run_owning_factory(std::move(make_task)), affinity);
    return;
  }
  Worker* worker = workers_[next_spawn_.fetch_add(1, std::memory_order_relaxed) % size()].get();
  task_started();
  worker->post(
      [worker, affinity, pending = PendingSpawn(this), make = std::move(make_task)]() mutable {
        pending.consumed();
        worker->push_stealable(run_owning_factory(std::move(make)), affinity,
                               /*already_counted=*/true);
      });
}

uint64_t Runtime::add_drain_hook(absl::AnyInvocable<void()> hook) {
  MutexLock lock(&hooks_mu_);
  uint64_t id = next_hook_id_++;
  hooks_.emplace(id, std::move(hook));
  return id;
}

void Runtime::remove_drain_hook(uint64_t id) {
  MutexLock lock(&hooks_mu_);
  hooks_.erase(id);
}

}  // namespace shardloop
