#!/usr/bin/env bash
# The echo benchmark behind `make run`: echo_server (1 worker, pinned to CPU 1) driven by loadgen
# (pinned to CPU 0) over loopback at 100 connections, pipeline depth 1 and 16, on the backend
# `auto` picks. Each configuration runs REPEATS times for SECONDS_PER_RUN each; the table shows
# the median by requests/s and the range, with the server's CPU per request (from
# /proc/PID/stat), since the one-core load generator may be the bottleneck.
#
# Usage: bench/run_echo.sh [BUILD_DIR]    env: SECONDS_PER_RUN=3 REPEATS=3 CONNECTIONS=100
set -euo pipefail
build=${1:-build/release}
seconds=${SECONDS_PER_RUN:-3}
repeats=${REPEATS:-3}
connections=${CONNECTIONS:-100}
out=${OUT:-$build/echo_results.jsonl}
source "$(dirname "$0")/lib/echo_bench.sh"
: > "$out"

start_echo_server "$build" auto 1
backend=$(sed -n 's/.*with [0-9]* \([a-z_]*\) workers.*/\1/p' "$bench_tmp/server.log")
echo "shardloop echo benchmark: kernel $(uname -r), $(nproc) CPUs, $pinning, backend $backend"
echo "  $connections connections, 64-byte messages, ${seconds}s x $repeats runs per row," \
  "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
summary_header
for depth in 1 16; do
  for r in $(seq "$repeats"); do
    run_loadgen "$build" --connections "$connections" --pipeline "$depth" --duration "$seconds" \
      --label "$backend pipeline=$depth run=$r"
  done | tee -a "$out" | summarize "pipeline=$depth"
done
echo "raw results: $out"
