#!/usr/bin/env bash
# The echo benchmark behind `make run`: echo_server (1 worker, pinned to CPU 1) driven by loadgen
# (pinned to CPU 0) over loopback, at 100 connections with pipeline depth 1 and 16.
# Each configuration runs REPEATS times for SECONDS each; the median and range are printed,
# with the server's CPU per request (from /proc/PID/stat) since the load tool may be the
# bottleneck. Results also go to $OUT (JSON lines).
#
# Usage: bench/run_echo.sh [BUILD_DIR]      env: SECONDS_PER_RUN=3 REPEATS=3 CONNECTIONS=100
set -euo pipefail
build=${1:-build/release}
seconds=${SECONDS_PER_RUN:-3}
repeats=${REPEATS:-3}
connections=${CONNECTIONS:-100}
out=${OUT:-$build/echo_results.jsonl}
: > "$out"

server_cpu="" load_cpu=""
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server_cpu="taskset -c 1" load_cpu="taskset -c 0"
  pinning="server on CPU 1, loadgen on CPU 0"
else
  pinning="unpinned (fewer than 2 CPUs or no taskset)"
fi

log=$(mktemp)
json=$(mktemp)
$server_cpu "$build/examples/echo_server" --port 0 --workers 1 >"$log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; rm -f "$log" "$json"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.05; done
port=$(sed -n 's/.*listening on .*:\([0-9]*\) with.*/\1/p' "$log")
[ -n "$port" ] || { echo "run_echo: echo_server did not start:"; cat "$log"; exit 1; }

echo "shardloop echo benchmark: $(uname -r), $(nproc) CPUs, $pinning"
echo "  $connections connections, 64-byte messages, ${seconds}s x $repeats repeats per row, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
printf '%-10s %12s %22s %10s %10s %10s %18s\n' pipeline "req/s(med)" "range" p50_us p99_us p999_us server_cpu_us/req
for depth in 1 16; do
  rps=() ; lines=()
  for r in $(seq "$repeats"); do
    $load_cpu "$build/bench/loadgen" --port "$port" --connections "$connections" \
      --pipeline "$depth" --duration "$seconds" --server_pid "$server_pid" \
      --label "pipeline=$depth run=$r" --json "$json" >/dev/null
    line=$(cat "$json")
    echo "$line" >> "$out"
    lines+=("$line")
  done
  # Median by requests/s; the row shows that run's latency and CPU, the range all runs' rates.
  printf '%s\n' "${lines[@]}" | awk -v depth="$depth" -F'[,:]' '
    { for (i = 1; i < NF; i++) { gsub(/[{}"]/, "", $i); v[$i] = $(i + 1) }
      rps[NR] = v["rps"]; row[NR] = sprintf("%10.1f %10.1f %10.1f %18.2f", v["p50_us"], v["p99_us"], v["p999_us"], v["server_cpu_us_per_req"]) }
    END {
      n = NR; for (i = 1; i <= n; i++) idx[i] = i
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (rps[idx[j]] < rps[idx[i]]) { t = idx[i]; idx[i] = idx[j]; idx[j] = t }
      m = idx[int((n + 1) / 2)]
      printf "%-10s %12.0f %10.0f..%-10.0f %s\n", depth, rps[m], rps[idx[1]], rps[idx[n]], row[m] }'
done
echo "raw results: $out"
