#!/usr/bin/env bash
# shardloop's example servers against the servers people know, in one run, each server pinned to
# SERVER_CPU (1) and the load tool to LOAD_CPU (0):
#   http_server (--workers 1 --pin) vs nginx (1 worker, return 200 "hello\n", no access log)
#     under wrk -t1 with 100 and 1000 connections for DURATION seconds;
#   kv_server (--workers 1) vs redis-server (no persistence) under redis-benchmark -t set, then
#     -t get, with 50 and 1000 clients, without and with -P 16, N requests (N_PIPELINED with -P).
# Each row runs REPEATS times, both servers in turn (which goes first alternates), each run on a
# freshly started server. Reported per row: requests/s from the tool and the server's CPU time per
# request (utime+stime from /proc/PID/stat just before and after the load run, nginx's master and
# worker summed), as median and min-max, and the shardloop/peer ratios against the targets
# (req/s >= the peer's; CPU/request <= 0.75x nginx's, <= 0.8x redis-server's). The CPU figure
# matters because a one-core load tool can be the bottleneck for both servers.
#
# Usage: bench/compare_peers.sh [BUILD_DIR]       (BUILD_DIR: default build/release, built
#                                                  Release here if the servers are missing)
#   env: DURATION=5 REPEATS=3 N=300000 N_PIPELINED=5*N KEYSPACE=100000 BACKEND=auto
#        SERVER_CPU=1 LOAD_CPU=0 HTTP_FLAGS= KV_FLAGS= (extra server flags) OUT=BUILD_DIR/peers.csv
#        ONLY=http|kv (one half only)
# Missing nginx, redis-server, redis-benchmark or wrk are installed with apt-get (root or sudo).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
duration=${DURATION:-5}
repeats=${REPEATS:-3}
requests=${N:-300000}
requests_pipelined=${N_PIPELINED:-$((requests * 5))}
keyspace=${KEYSPACE:-100000}
backend=${BACKEND:-auto}
only=${ONLY:-}
out=${OUT:-$build/peers.csv}
read -r -a http_flags <<< "${HTTP_FLAGS:-}"
read -r -a kv_flags <<< "${KV_FLAGS:-}"
source "$root/bench/lib/peers.sh"

for v in duration repeats requests requests_pipelined keyspace; do
  if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
    echo "compare_peers: $v must be a positive integer, not '${!v}'" >&2
    exit 2
  fi
done
case "$only" in "" | http | kv) ;; *)
  echo "compare_peers: ONLY must be http or kv, not '$only'" >&2
  exit 2
  ;;
esac
require_two_cpus
raise_open_file_limit
install_missing_peer_tools
if [ ! -x "$build/examples/http_server" ] || [ ! -x "$build/examples/kv_server" ]; then
  echo "compare_peers: building http_server and kv_server (Release) in $build" >&2
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >&2
  cmake --build "$build" -j "$(nproc)" --target http_server kv_server >&2
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
[ "$build_type" = Release ] ||
  echo "compare_peers: WARNING: $build is a '${build_type:-unknown}' build, not Release" >&2

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
start=$(date +%s)
results="$peers_tmp/results"
: > "$results"

# One run of one row on one server. Appends to $results and prints a progress line.
#   record ROW SERVER RUN INTENDED_SECONDS "rps requests tool_s wall_s cpu_us errors" [WHAT]
# WHAT names the intended time in the progress line ("intended" unless given).
record() {
  local row=$1 server=$2 run=$3 intended=$4 line=$5 what=${6:-intended}
  if ! server_alive || ! [[ $line =~ ^[0-9.]+\ [0-9]+\ [0-9.]+\ [0-9.]+\ [0-9]+\ [0-9]+$ ]]; then
    echo "compare_peers: $server failed during '$row' run $run (result '$line'); its log ends:" >&2
    tail -5 "$server_log" >&2
    exit 1
  fi
  echo "$row|$server|$run|$intended|$line" >> "$results"
  # shellcheck disable=SC2086
  set -- $line
  awk -v row="$row" -v server="$server" -v run="$run" -v want="$intended" -v rps="$1" -v n="$2" \
    -v wall="$4" -v cpu="$5" -v err="$6" -v hz="$clk_tck" -v what="$what" 'BEGIN {
      per = n > 0 ? cpu / n : 0
      printf "  %-16s %-12s run %d: %9.0f req/s %8.3f us/req  wall %.2f s (%s %.2f s)",
             row, server, run, rps, per, wall, what, want
      if (err > 0) printf "  ERRORS: %d", err
      if (want > 0 && (wall > want * 1.2 || wall < want * 0.8))
        printf "  WARNING: wall time differs from that by more than 20%%"
      if (cpu * hz / 1e6 < 50) printf "  WARNING: only %.0f CPU ticks sampled: CPU/request is coarse", cpu * hz / 1e6
      printf "\n" }'
}

shardloop_backend=""
note_backend() {  # the backend a shardloop server reported in its "listening on" line
  [ -n "$shardloop_backend" ] ||
    shardloop_backend=$(sed -n 's/.*with [0-9]* \([a-z_]*\) workers.*/\1/p' "$server_log")
}

echo "shardloop vs peers: kernel $(uname -r), $(nproc) CPUs, servers on CPU $server_cpu, load tool on" \
  "CPU $load_cpu, commit $commit, backend flag $backend"
echo "  $("$(_find_binary nginx)" -v 2>&1 | sed 's/^nginx version: //'), redis-server" \
  "$("$(_find_binary redis-server)" --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), wrk" \
  "$(wrk --version 2>&1 | sed -n '1s/^wrk \([^ ]*\).*/\1/p'), redis-benchmark" \
  "$(redis-benchmark --version | awk '{ print $2 }'), CLK_TCK $clk_tck, open files $(ulimit -n)"
echo "  $repeats runs per row; wrk ${duration}s; redis-benchmark -n $requests" \
  "(-n $requests_pipelined with -P 16), -r $keyspace"
# Other work on the machine skews both servers' numbers; the load average says how much there was.
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

rows=()  # "ROW|PEER_TARGET" in table order

# wrk rows: http_server vs nginx.
if [ -z "$only" ] || [ "$only" = http ]; then
  for c in 100 1000; do rows+=("wrk -t1 -c$c|0.75"); done
  for r in $(seq "$repeats"); do
    for c in 100 1000; do
      row="wrk -t1 -c$c"
      order="shardloop peer"
      [ $((r % 2)) -eq 0 ] && order="peer shardloop"
      for side in $order; do
        if [ "$side" = shardloop ]; then
          start_shardloop http_server "$build/examples/http_server" --workers 1 --pin \
            --backend "$backend" "${http_flags[@]}"
          note_backend
          name=http_server
        else
          start_nginx
          name=nginx
        fi
        record "$row" "$name" "$r" "$duration" "$(run_wrk "$c" "$duration")"
        stop_server
      done
    done
  done
fi

# redis-benchmark rows: kv_server vs redis-server. SET, then GET of the keys just set.
if [ -z "$only" ] || [ "$only" = kv ]; then
  for c in 50 1000; do
    for p in 1 16; do
      for t in SET GET; do rows+=("$t -c$c -P$p|0.8"); done
    done
  done
  for r in $(seq "$repeats"); do
    for c in 50 1000; do
      for p in 1 16; do
        n=$requests
        [ "$p" -gt 1 ] && n=$requests_pipelined
        order="shardloop peer"
        [ $((r % 2)) -eq 0 ] && order="peer shardloop"
        for side in $order; do
          if [ "$side" = shardloop ]; then
            start_shardloop kv_server "$build/examples/kv_server" --workers 1 \
              --backend "$backend" "${kv_flags[@]}"
            note_backend
            name=kv_server
          else
            start_redis
            name="redis-server"
          fi
          for t in SET GET; do
            line=$(run_redis_benchmark "${t,,}" "$c" "$p" "$n" "$keyspace")
            # No duration is asked for here (the run is -n bounded), so the wall time is held
            # against the time redis-benchmark measured itself; the difference is its start-up
            # and connection setup (about 1 ms per client), which the CPU sample includes.
            record "$t -c$c -P$p" "$name" "$r" "$(echo "$line" | awk '{ print $3 }')" "$line" \
              "redis-benchmark's own"
          done
          stop_server
        done
      done
    done
  done
fi

# Raw results, one line per run, tagged with what the run depends on.
{
  echo "commit,kernel,backend,server_cpu,load_cpu,row,server,run,rps,requests,tool_s,wall_s,intended_s,server_cpu_us,server_cpu_us_per_req,errors"
  awk -F'|' -v commit="$commit" -v kernel="$(uname -r)" -v backend="${shardloop_backend:-$backend}" \
    -v sc="$server_cpu" -v lc="$load_cpu" '{
      split($5, f, " ")
      printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%.4f,%s\n", commit, kernel, backend, sc, lc,
             $1, $2, $3, f[1], f[2], f[3], f[4], $4, f[5], (f[2] > 0 ? f[5] / f[2] : 0), f[6] }' "$results"
} > "$out"

echo
echo "shardloop backend: ${shardloop_backend:-unknown}; medians over $repeats runs, (min-max)"
printf '%-17s %-14s %10s %-19s %10s %-17s\n' row server "req/s" "(min-max)" "CPU us/req" "(min-max)"
for entry in "${rows[@]}"; do
  row=${entry%%|*}
  target=${entry#*|}
  awk -F'|' -v row="$row" -v target="$target" -v hz="$clk_tck" '
    function median(a, n,   i, j, t) {
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    $1 == row {
      split($5, f, " ")
      s = ($2 == "http_server" || $2 == "kv_server") ? "shardloop" : "peer"
      name[s] = $2; k = ++n[s]
      rps[s, k] = f[1]; cpu[s, k] = f[2] > 0 ? f[5] / f[2] : 0; err[s] += f[6]
      if (f[5] * hz / 1e6 < 50) coarse = 1
    }
    END {
      for (si = 1; si <= 2; si++) {
        s = si == 1 ? "shardloop" : "peer"
        if (!n[s]) continue
        lo_r = hi_r = rps[s, 1]; lo_c = hi_c = cpu[s, 1]
        for (k = 1; k <= n[s]; k++) {
          r[k] = rps[s, k]; c[k] = cpu[s, k]
          if (r[k] < lo_r) lo_r = r[k]; if (r[k] > hi_r) hi_r = r[k]
          if (c[k] < lo_c) lo_c = c[k]; if (c[k] > hi_c) hi_c = c[k]
        }
        mr[s] = median(r, n[s]); mc[s] = median(c, n[s])
        printf "%-17s %-14s %10.0f %-19s %10.3f %-17s%s\n", (si == 1 ? row : ""), name[s], mr[s],
               sprintf("(%.0f-%.0f)", lo_r, hi_r), mc[s], sprintf("(%.3f-%.3f)", lo_c, hi_c),
               (err[s] ? sprintf("  %d ERRORS", err[s]) : "")
      }
      if (n["shardloop"] && n["peer"] && mr["peer"] > 0) {
        rr = mr["shardloop"] / mr["peer"]
        if (mc["shardloop"] > 0 && mc["peer"] > 0) {
          cr = sprintf("%10.2f", mc["shardloop"] / mc["peer"])
          verdict = (mc["shardloop"] / mc["peer"] <= target ? "met" : "MISSED")
        } else {
          cr = sprintf("%10s", "n/a"); verdict = "n/a (no CPU ticks sampled)"
        }
        if (coarse) verdict = verdict " (coarse: a run had < 50 CPU ticks)"
        printf "%-17s %-14s %10.2f %-19s %s %-17s targets: req/s >= 1 %s, CPU <= %s %s\n", "",
               "shardloop/peer", rr, "", cr, "", (rr >= 1 ? "met" : "MISSED"), target, verdict
      }
    }' "$results"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw results: $out"
echo "took $(($(date +%s) - start)) s"
