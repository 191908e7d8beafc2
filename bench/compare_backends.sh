#!/usr/bin/env bash
# epoll vs io_uring in one run: echo_server (1 worker, CPU 1) under loadgen (CPU 0) at
# CONNECTIONS connections with pipeline depth PIPELINE, REPEATS runs of SECONDS_PER_RUN each per
# backend (interleaved, so drift hits both alike); then one strace -c -f run per backend for
# system calls per request (strace slows the server: that run is for counts, not speed).
#
# Usage: bench/compare_backends.sh [BUILD_DIR]
#   env: CONNECTIONS=1000 PIPELINE=16 SECONDS_PER_RUN=3 REPEATS=3
set -euo pipefail
build=${1:-build/release}
connections=${CONNECTIONS:-1000}
depth=${PIPELINE:-16}
seconds=${SECONDS_PER_RUN:-3}
repeats=${REPEATS:-3}
source "$(dirname "$0")/lib/echo_bench.sh"
start=$(date +%s)

echo "shardloop backends: kernel $(uname -r), $(nproc) CPUs, $pinning"
echo "  $connections connections, pipeline $depth, 64-byte messages, ${seconds}s x $repeats runs," \
  "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
for backend in epoll io_uring; do : > "$bench_tmp/$backend.jsonl"; done
for r in $(seq "$repeats"); do
  for backend in epoll io_uring; do
    start_echo_server "$build" "$backend" 1
    run_loadgen "$build" --connections "$connections" --pipeline "$depth" --duration "$seconds" \
      --label "$backend run=$r" >> "$bench_tmp/$backend.jsonl"
    stop_echo_server
  done
done
summary_header
for backend in epoll io_uring; do summarize "$backend" < "$bench_tmp/$backend.jsonl"; done

if command -v strace >/dev/null; then
  echo "system calls per request (server, strace -c -f, one ${seconds}s run each):"
  for backend in epoll io_uring; do
    start_echo_server "$build" "$backend" 1
    read -r calls requests < <(syscalls_per_request "$build" --connections "$connections" \
      --pipeline "$depth" --duration "$seconds" --label "$backend strace")
    stop_echo_server
    awk -v b="$backend" -v c="$calls" -v r="$requests" \
      'BEGIN { printf "  %-9s %10d syscalls / %10d requests = %.4f per request\n", b, c, r, r ? c / r : 0 }'
  done
else
  echo "strace not installed: no syscall counts"
fi
echo "took $(( $(date +%s) - start )) s"
