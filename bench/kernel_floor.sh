#!/usr/bin/env bash
# How much of a server's CPU per request is the kernel's TCP work, which no event loop can avoid:
# the functions that send and receive the bytes (tcp_sendmsg, tcp_recvmsg, and everything they
# call: on loopback that includes delivering the sent segment into the peer's socket). Two servers
# that move the same bytes in the same segments do the same work there, so
#
#     floor(A vs B) = A's TCP CPU per request / B's whole CPU per request
#
# is the lowest CPU-per-request ratio A could reach against B if A spent nothing at all outside
# those functions (no poller, no syscall entry, no handler). A target below the floor cannot be
# met by any change to A. Rows, each server pinned to SERVER_CPU (1), the load tool to LOAD_CPU (0):
#   echo:  echo_server --backend epoll vs --backend io_uring (1 worker), loadgen 1000 connections,
#          pipeline 16: the ceiling of io_uring's requests per CPU-second over epoll's;
#   http:  http_server --workers 1 --pin vs nginx (1 worker, return 200), wrk -t1 -c100;
#   kv:    kv_server --workers 1 vs redis-server, redis-benchmark -c 50 -t get (no pipelining).
# Per run: the server's CPU per request (/proc/PID/stat over the whole load run) and the share of
# its CPU samples inside tcp_sendmsg + tcp_recvmsg (`perf record -e cpu-clock -g` on the server
# for PERF_SECONDS in the middle of the run), and in the kernel at all: the rest splits into the
# kernel's other work (syscall entry, poller, scheduling) and user space. Medians over REPEATS
# runs, servers alternating.
#
# Usage: bench/kernel_floor.sh [BUILD_DIR]              (default build/release)
#   env: REPEATS=3 SECONDS_PER_RUN=5 PERF_SECONDS=3 ONLY=echo|http|kv SERVER_CPU=1 LOAD_CPU=0
# Needs perf (Debian's linux-perf; installed with apt-get when missing) and root or
# kernel.perf_event_paranoid <= 1 for kernel samples. cpu-clock sampling attributes time spent
# with interrupts off to where they are turned back on; both sides of a row are skewed alike.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
repeats=${REPEATS:-3}
seconds=${SECONDS_PER_RUN:-5}
perf_seconds=${PERF_SECONDS:-3}
only=${ONLY:-}
peers_tool=kernel_floor
source "$root/bench/lib/peers.sh"

for v in repeats seconds perf_seconds; do
  if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
    echo "kernel_floor: $v must be a positive integer, not '${!v}'" >&2
    exit 2
  fi
done
if [ "$perf_seconds" -gt $((seconds - 2)) ]; then
  echo "kernel_floor: PERF_SECONDS must leave 1 s each side inside SECONDS_PER_RUN" >&2
  exit 2
fi
case "$only" in "" | echo | http | kv) ;; *)
  echo "kernel_floor: ONLY must be echo, http or kv, not '$only'" >&2
  exit 2
  ;;
esac
require_two_cpus
if ! command -v perf >/dev/null; then
  apt_install linux-perf || {
    echo "kernel_floor: perf is needed (apt-get install linux-perf)" >&2
    exit 1
  }
fi
if [ "$(id -u)" -ne 0 ] && [ "$(cat /proc/sys/kernel/perf_event_paranoid)" -gt 1 ]; then
  echo "kernel_floor: kernel samples need root or kernel.perf_event_paranoid <= 1" >&2
  exit 1
fi
raise_open_file_limit
install_missing_peer_tools
for b in echo_server http_server kv_server; do
  [ -x "$build/examples/$b" ] || missing_binary=1
done
if [ -n "${missing_binary:-}" ] || [ ! -x "$build/bench/loadgen" ]; then
  echo "kernel_floor: building the servers and loadgen (Release) in $build" >&2
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >&2
  cmake --build "$build" -j "$(nproc)" --target echo_server http_server kv_server loadgen >&2
fi

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
start=$(date +%s)
results="$peers_tmp/results"
: > "$results"

# "TCP KERNEL": the shares (percent) of the samples in perf.data whose stack holds tcp_sendmsg or
# tcp_recvmsg (the two never nest, so their "children" percentages add up), and of the samples
# taken in the kernel at all. KERNEL - TCP is the kernel's work outside TCP: system call entry,
# the poller (epoll, or io_uring's submission, task work and completions), scheduling.
profile_shares() {
  local tcp kernel
  tcp=$(perf report -i "$1" --children --sort sym --stdio -g none 2>/dev/null |
    awk '$3 == "[k]" && ($4 == "tcp_sendmsg" || $4 == "tcp_recvmsg") { gsub("%", "", $1); s += $1 }
         END { printf "%.2f\n", s + 0 }')
  kernel=$(perf report -i "$1" --no-children --sort dso --stdio -g none 2>/dev/null |
    awk '$2 == "[kernel.kallsyms]" { gsub("%", "", $1); s += $1 } END { printf "%.2f\n", s + 0 }')
  echo "$tcp $kernel"
}

# Runs LOAD_FUNCTION (which prints the peers.sh result line) in the background against the
# running server, records perf on the server's main process in the middle of it, and appends
# "ROW|SERVER|rps requests cpu_us tcp_share kernel_share" to $results.
measure() {
  local row=$1 server=$2 load=$3
  shift 3
  local line_file="$peers_tmp/line" data="$peers_tmp/perf.data"
  "$load" "$@" > "$line_file" &
  local load_pid=$!
  sleep 1
  # The last of server_pids is the process that serves (nginx: its worker).
  perf record -q -e cpu-clock -F 999 -g -p "${server_pids[-1]}" -o "$data" \
    -- sleep "$perf_seconds" >/dev/null 2>&1 || true
  wait "$load_pid"
  local shares
  shares=$(profile_shares "$data")
  # shellcheck disable=SC2046
  set -- $(cat "$line_file")
  if ! server_alive || [ "${2:-0}" -eq 0 ] || [ "${6:-1}" -ne 0 ]; then
    echo "kernel_floor: $server failed in '$row' (result '$*')" >&2
    exit 1
  fi
  awk -v row="$row" -v s="$server" -v rps="$1" -v n="$2" -v cpu="$5" -v shares="$shares" 'BEGIN {
    per = cpu / n; split(shares, sh, " ")
    printf "  %-5s %-16s %9.0f req/s %7.3f us/req, %5.1f%% in TCP send/recv = %6.3f us/req, %5.1f%% in the kernel\n",
           row, s, rps, per, sh[1], per * sh[1] / 100, sh[2] }'
  echo "$row|$server|$1 $2 $5 $shares" >> "$results"
}

# loadgen as a peers.sh load function: "rps requests tool_s wall_s cpu_us errors".
run_loadgen() {
  local c0 c1 t0 t1 json="$peers_tmp/loadgen.json"
  c0=$(cpu_ticks "${server_pids[@]}")
  t0=$(_now)
  taskset -c "$load_cpu" "$build/bench/loadgen" --port "$port" --connections 1000 --pipeline 16 \
    --duration "$seconds" --json "$json" >/dev/null 2>&1 || true
  t1=$(_now)
  c1=$(cpu_ticks "${server_pids[@]}")
  local rps requests errors
  rps=$(sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' "$json")
  requests=$(sed -n 's/.*"requests":\([0-9]*\).*/\1/p' "$json")
  errors=$(sed -n 's/.*"errors":\([0-9]*\).*/\1/p' "$json")
  _result_line "${rps:-0}" "${requests:-0}" "$seconds" "$t0" "$t1" "$c0" "$c1" "${errors:-1}"
}

echo "kernel floor: kernel $(uname -r), $(nproc) CPUs, servers on CPU $server_cpu, load on CPU" \
  "$load_cpu, commit $commit, $repeats runs per server, ${seconds}s loads, perf ${perf_seconds}s"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
# One run of a row on one server: start it, load it while perf samples it, stop it.
run_echo() {  # echo_epoll | echo_io_uring
  start_shardloop echo_server "$build/examples/echo_server" --workers 1 --backend "${1#echo_}"
  measure echo "$1" run_loadgen
  stop_server
}
run_http() {  # http_server | nginx
  if [ "$1" = http_server ]; then
    start_shardloop http_server "$build/examples/http_server" --workers 1 --pin
  else
    start_nginx
  fi
  measure http "$1" run_wrk 100 "$seconds"
  stop_server
}
run_kv() {  # kv_server | redis-server
  if [ "$1" = kv_server ]; then
    start_shardloop kv_server "$build/examples/kv_server" --workers 1
  else
    start_redis
  fi
  # SET first so that GET finds its keys; only the GET run is measured. -n sized to outlast the
  # perf window at about 150k requests/s.
  run_redis_benchmark set 50 1 100000 100000 > /dev/null
  measure kv "$1" run_redis_benchmark get 50 1 $((seconds * 150000)) 100000
  stop_server
}
# Run R of a row: both servers in turn, which goes first alternating, so drift hits both alike.
run_row() {  # ROW R SERVER_A SERVER_B
  [ -z "$only" ] || [ "$only" = "$1" ] || return 0
  if [ $(($2 % 2)) -eq 1 ]; then "run_$1" "$3"; "run_$1" "$4"; else "run_$1" "$4"; "run_$1" "$3"; fi
}

for r in $(seq "$repeats"); do
  run_row echo "$r" echo_epoll echo_io_uring
  run_row http "$r" http_server nginx
  run_row kv "$r" kv_server redis-server
done

echo
echo "medians over $repeats runs; CPU us/req = TCP (inside tcp_sendmsg + tcp_recvmsg) + the kernel's"
echo "other work (syscall entry, poller, scheduling) + user space:"
printf '%-5s %-16s %10s %10s %8s %10s %10s %10s\n' row server "req/s" "CPU us/req" "TCP %" \
  "TCP us/req" "kernel oth" "user"
awk -F'|' '
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    split($3, f, " "); key = $1 "|" $2
    if (!(key in n)) order[++keys] = key
    k = ++n[key]; rps[key, k] = f[1]; cpu[key, k] = f[3] / f[2]; share[key, k] = f[4]
    tcp[key, k] = f[3] / f[2] * f[4] / 100
    kother[key, k] = f[3] / f[2] * (f[5] - f[4]) / 100; user[key, k] = f[3] / f[2] * (100 - f[5]) / 100
  }
  END {
    for (i = 1; i <= keys; i++) {
      key = order[i]; m = n[key]
      for (k = 1; k <= m; k++) {
        a[k] = rps[key, k]; b[k] = cpu[key, k]; c[k] = share[key, k]; d[k] = tcp[key, k]
        g[k] = kother[key, k]; h[k] = user[key, k]
      }
      R[key] = median(a, m); C[key] = median(b, m); S[key] = median(c, m); T[key] = median(d, m)
      K[key] = median(g, m); U[key] = median(h, m)
      split(key, p, "|")
      printf "%-5s %-16s %10.0f %10.3f %7.1f%% %10.3f %10.3f %10.3f\n", p[1], p[2], R[key], C[key], S[key], T[key], K[key], U[key]
    }
    print ""
    print "floors use the smaller of a row'"'"'s two TCP figures (the same work, measured twice): the"
    print "bound most favourable to shardloop"
    e = "echo|echo_epoll"; u = "echo|echo_io_uring"
    if ((e in C) && (u in C)) {
      t = T[u] < T[e] ? T[u] : T[e]
      printf "echo: io_uring has %.2fx epoll'"'"'s requests per CPU-second; with nothing outside TCP it could reach at most %.2fx (target 1.2x)\n", C[e] / C[u], C[e] / t
      printf "      for 1.2x its other work must fall from %.3f to %.3f us/req (epoll'"'"'s other work: %.3f);\n", C[u] - T[u], C[e] / 1.2 - t, C[e] - T[e]
      printf "      of that, %.3f us/req is the kernel'"'"'s own io_uring, syscall and scheduling work\n", K[u]
    }
    s = "http|http_server"; p2 = "http|nginx"
    if ((s in C) && (p2 in C)) {
      t = T[s] < T[p2] ? T[s] : T[p2]
      printf "http: http_server uses %.2fx nginx'"'"'s CPU per request; floor %.2fx (target 0.75x: leaves %.3f us/req outside TCP, nginx spends %.3f)\n", C[s] / C[p2], t / C[p2], 0.75 * C[p2] - t, C[p2] - T[p2]
    }
    s = "kv|kv_server"; p2 = "kv|redis-server"
    if ((s in C) && (p2 in C)) {
      t = T[s] < T[p2] ? T[s] : T[p2]
      printf "kv:   kv_server uses %.2fx redis-server'"'"'s CPU per request; floor %.2fx (target 0.8x: leaves %.3f us/req outside TCP, redis-server spends %.3f)\n", C[s] / C[p2], t / C[p2], 0.8 * C[p2] - t, C[p2] - T[p2]
    }
  }' "$results"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "took $(($(date +%s) - start)) s"
