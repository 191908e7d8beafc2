// The rt-* storm designs: the shardloop Runtime itself, in one of its poll modes and backends,
// serving the storm's connections, so the runtime's modes are measured by the same driver, on
// the same connections and with the same method as the bare designs.
//
// setup() starts a Runtime with T workers and has worker i % T adopt (a dup of) connection i's
// worker end: one coroutine per connection, reading with AsyncFd::read_some and publishing every
// byte to the driver as it arrives (the bare designs publish a poll's worth at a time; one atomic
// add per event is the difference). It returns once every connection is adopted and the workers
// are idle, so the measured part starts with parked workers, like the bare designs'. The
// runtime's threads are its own: the storm's T worker threads only wait for the end of the run.
//
// Per-run figures come from the workers' own counters (WorkerStats deltas, read when the run
// ends): polls = poller wait calls, polled_events = events dispatched (an event handed to another
// worker by a shared mode is counted where it is dispatched), handled = bytes read,
// poll_wall_ns = time inside poller wait calls *including time blocked in them*, poll_cpu_ns =
// the worker thread's CPU time inside them (RuntimeOptions::time_every_poll; less one clock
// read per call, as the bare designs count it); both are 0 when RunConfig::time_polls is off (the
// runtime then runs untimed, as in production); spurious is not measured (0). stay-ready does not
// apply: the runtime registers sockets edge-triggered and reads what is ready, so it never repeats
// a level-triggered poll over unread sockets; such a run fails with a message saying so.
//
// With RunConfig::driver == kTask the rounds (DriverRounds, the same as the driver thread's) run
// as a task on worker 0, as the Go peer's driver is a goroutine among its readers: the reader
// whose byte completes a round resumes the driver (on worker 0: inline in its ready queue; on
// another worker: through worker 0's inbox) instead of waking the storm's driver thread. That
// makes the comparison with Go like for like: at T = 1 no thread wakes up per event in either.
// The driver's CPU is then part of the workers', so compare the process figures.
#pragma once

#include <memory>

#include "absl/status/status.h"
#include "bench/storm/poll_designs.h"

namespace shardloop::bench::storm {

bool is_runtime_design(Design d);
// OK for a bare design driven by the driver thread, or a runtime design whose backend this kernel
// offers and which applies to `pattern`; otherwise the reason it cannot run.
absl::Status runtime_design_usable(Design d, Pattern pattern, Driver driver = Driver::kThread);
std::unique_ptr<PollDesign> make_runtime_design(RunState& run);

}  // namespace shardloop::bench::storm
