#!/usr/bin/env bash
# Rebalancer off vs on, same run: echo_server with 2 workers pinned to CPUs 0 and 1 and
# steering=cpu, driven by loadgen pinned to CPU 0, so every connection is accepted by worker 0
# (the imbalance), which also shares its CPU with the load generator. With the rebalancer on
# (--rebalance_ms), connections move to worker 1 by measured load. Each message costs the server
# WORK_US of CPU (--work_us) so that the server, not the load generator sharing CPU 0, is the
# bottleneck. REPEATS runs of SECONDS_PER_RUN per setting, interleaved; median by requests/s with
# the range, p99.
#
# Usage: bench/run_rebalance.sh [BUILD_DIR]
#   env: CONNECTIONS=200 SECONDS_PER_RUN=5 REPEATS=3 BACKEND=epoll REBALANCE_MS=50 WORK_US=20
set -euo pipefail
build=${1:-build/release}
connections=${CONNECTIONS:-200}
seconds=${SECONDS_PER_RUN:-5}
repeats=${REPEATS:-3}
backend=${BACKEND:-epoll}
rebalance_ms=${REBALANCE_MS:-50}
work_us=${WORK_US:-20}
source "$(dirname "$0")/lib/echo_bench.sh"
if [ -z "$load_cpu" ]; then
  echo "run_rebalance.sh needs 2 CPUs and taskset" >&2
  exit 1
fi
export SERVER_TASKSET=""  # the server pins its own workers (--pin via --steering cpu)
start=$(date +%s)
echo "shardloop rebalancer: kernel $(uname -r), $(nproc) CPUs, backend $backend, workers on CPUs 0 and 1,"
echo "  loadgen on CPU 0, steering=cpu, $connections connections, pipeline 1, ${work_us} us of work per" \
  "message, ${seconds}s x $repeats runs," \
  "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
for setting in off on; do : > "$bench_tmp/$setting.jsonl"; done
for r in $(seq "$repeats"); do
  for setting in off on; do
    ms=0
    [ "$setting" = on ] && ms=$rebalance_ms
    start_echo_server "$build" "$backend" 2 --steering cpu --rebalance_ms "$ms" --work_us "$work_us"
    run_loadgen "$build" --connections "$connections" --pipeline 1 --duration "$seconds" \
      --label "rebalance=$setting run=$r" >> "$bench_tmp/$setting.jsonl"
    stop_echo_server
    grep -h "rebalancer:" "$bench_tmp/server.log" | sed "s/^/  run $r: /" || true
  done
done
summary_header
for setting in off on; do summarize "rebalancer $setting" < "$bench_tmp/$setting.jsonl"; done
echo "took $(( $(date +%s) - start )) s"
