#!/usr/bin/env bash
# Memory per idle connection: echo_server (1 worker) on each backend, CONNECTIONS idle clients
# from a separate process (each process stays under its fd limit); the server's RSS delta
# (VmRSS from /proc/PID/status, measured once every connection is accepted) divided by the
# number of connections. Counts user-space memory only: kernel socket buffers are not in RSS.
#
# Usage: bench/idle_memory.sh [BUILD_DIR]    env: CONNECTIONS=10000
set -euo pipefail
build=${1:-build/release}
connections=${CONNECTIONS:-10000}
source "$(dirname "$0")/lib/echo_bench.sh"

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

echo "idle connections: $connections, echo_server with 1 worker, kernel $(uname -r)"
for backend in epoll io_uring; do
  start_echo_server "$build" "$backend" 1
  sleep 0.2
  before=$(rss_kb "$server_pid")
  fifo="$bench_tmp/clients.out"
  "$build/bench/idle_clients" --port "$port" --connections "$connections" --hold 4 >"$fifo" &
  clients=$!
  for _ in $(seq 200); do grep -q connected "$fifo" 2>/dev/null && break; sleep 0.05; done
  sleep 1  # let the server accept the last of them
  after=$(rss_kb "$server_pid")
  wait "$clients"
  stop_echo_server
  awk -v b="$backend" -v x="$before" -v y="$after" -v n="$connections" 'BEGIN {
    printf "  %-9s RSS %7d KB -> %7d KB: %6.0f bytes per idle connection\n", b, x, y, (y - x) * 1024 / n }'
done
