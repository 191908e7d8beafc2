# Shared pieces of the echo benchmark scripts (sourced, not run).
#   start_echo_server BUILD BACKEND [WORKERS [ARGS...]]
#                                              -> sets server_pid, port (server pinned to CPU 1,
#                                                 unless SERVER_TASKSET says otherwise; "" = none)
#   stop_echo_server
#   run_loadgen BUILD ARGS...                  -> prints loadgen's JSON line (loadgen on CPU 0)
#   summarize LABEL < json-lines               -> one table row: median by req/s, and the range
#   syscalls_per_request BUILD ARGS...         -> strace -c -f the server during one loadgen run

server_cpu="" load_cpu=""
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server_cpu="taskset -c 1" load_cpu="taskset -c 0"
  pinning="server on CPU 1, loadgen on CPU 0"
else
  pinning="unpinned (fewer than 2 CPUs or no taskset)"
fi
bench_tmp=$(mktemp -d)
trap 'stop_echo_server; rm -rf "$bench_tmp"' EXIT

start_echo_server() {
  local build=$1 backend=$2 workers=${3:-1}
  shift $(($# < 3 ? $# : 3))
  ${SERVER_TASKSET-$server_cpu} "$build/examples/echo_server" --port 0 --workers "$workers" \
    --backend "$backend" "$@" >"$bench_tmp/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 200); do grep -q "listening on" "$bench_tmp/server.log" && break; sleep 0.05; done
  port=$(sed -n 's/.*listening on .*:\([0-9]*\) with.*/\1/p' "$bench_tmp/server.log")
  if [ -z "$port" ]; then
    echo "echo_server did not start:" >&2
    cat "$bench_tmp/server.log" >&2
    exit 1
  fi
}

stop_echo_server() {
  if [ -n "${server_pid:-}" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}

run_loadgen() {
  local build=$1
  shift
  $load_cpu "$build/bench/loadgen" --port "$port" --server_pid "$server_pid" \
    --json "$bench_tmp/run.json" "$@" >/dev/null
  cat "$bench_tmp/run.json"
}

summarize() {
  awk -v label="$1" -F'[,:]' '
    { for (i = 1; i < NF; i++) { k = $i; gsub(/[{}" ]/, "", k); x = $(i + 1); gsub(/[{}" ]/, "", x); v[k] = x }
      rps[NR] = v["rps"]
      row[NR] = sprintf("%10.1f %10.1f %10.1f %12.3f %12.0f", v["p50_us"], v["p99_us"], v["p999_us"],
                        v["server_cpu_us_per_req"], v["server_cpu_us_per_req"] > 0 ? 1e6 / v["server_cpu_us_per_req"] : 0)
      wall[NR] = v["wall_s"]; want = v["intended_s"] }
    END {
      n = NR; for (i = 1; i <= n; i++) idx[i] = i
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (rps[idx[j]] < rps[idx[i]]) { t = idx[i]; idx[i] = idx[j]; idx[j] = t }
      m = idx[int((n + 1) / 2)]
      late = ""; for (i = 1; i <= n; i++) if (wall[i] > want * 1.2 + 0.5) late = " (a run overran its duration)"
      printf "%-22s %10.0f %9.0f..%-9.0f %s%s\n", label, rps[m], rps[idx[1]], rps[idx[n]], row[m], late }'
}

summary_header() {
  printf '%-22s %10s %20s %10s %10s %10s %12s %12s\n' config "req/s(med)" "range" p50_us p99_us \
    p999_us srv_us/req srv_req/cpu_s
}

# Runs loadgen once while strace counts the server's syscalls; prints "syscalls requests".
syscalls_per_request() {
  local build=$1
  shift
  strace -c -f -p "$server_pid" -o "$bench_tmp/strace.txt" 2>/dev/null &
  local strace_pid=$!
  sleep 0.5
  local json
  json=$(run_loadgen "$build" "$@")
  kill -INT "$strace_pid" 2>/dev/null || true
  wait "$strace_pid" 2>/dev/null || true
  local calls requests
  calls=$(awk '$NF == "total" { print $4 + 0 }' "$bench_tmp/strace.txt")
  requests=$(echo "$json" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
  echo "${calls:-0} ${requests:-0}"
}
