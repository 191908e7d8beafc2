#!/usr/bin/env bash
# The ready-storm matrix: bench/storm's three poll designs (sharded, global, throttled; raw
# epoll, no shardloop runtime) and, when `go` is installed, the Go peer (bench/peers/go/storm.go:
# one goroutine per connection, GOMAXPROCS = T), over N loopback connections with T worker
# threads, for each pattern. Every (N, pattern) opens its connections once and runs all
# (repeat, T, design) on them, designs in rotating order. Progress (one line per run) goes to
# stderr; stdout gets the median table: per (pattern, N, T, design) the run with the median
# events/s, its min-max over the repeats, the CPU per million events (workers only, and the whole
# process with the driver, which is what the Go peer can report; min-max of the latter), the
# poll-call figures, events per poll, voluntary context switches and spurious wakeups per event.
# Raw runs go to OUT as CSV, tagged with commit and kernel.
#
# Usage: bench/storm/run_storm.sh [BUILD_DIR]     (default build/release; storm is built there,
#                                                  Release, if missing)
#   env: NS="1024 4096" THREADS="1 2 4 8 16 32 64" DESIGNS="sharded global throttled rt-sharded
#        rt-global rt-throttled rt-adaptive rt-adaptive-uring rt-adaptive+task" (rt-sharded-uring
#        also exists)
#        PATTERNS="burst trickle" (or stay-ready) REPEATS=3 DURATION=0.25 (seconds per run)
#        WARMUP (seconds of unmeasured rounds before each run; default 0.1 per 1,024
#        connections: long enough, measured, for the rt-* designs' streams to follow their wakes
#        to the task driver's worker, two passes over the N connections; bench/README.md)
#        TRANSPORT=tcp|unix MAX_EVENTS=128 ARM=oneshot|edge GO=auto|off OUT=BUILD_DIR/storm.csv
#        TIME_POLLS=1|0 (0: the rt-* designs run untimed, as in production, with no poll figures:
#        the fair setting for events/s and CPU per event against the Go peer, which times
#        nothing; the bare designs always time their polls)
#        An rt-* design with +task (rt-adaptive+task) is driven by a task on the runtime's worker 0
#        instead of the storm's driver thread, as the Go peer's driver is a goroutine: the
#        like-for-like comparison with Go (compare the process CPU columns).
# The defaults (2 N x 2 patterns x 7 T x 3 repeats x 9 designs + Go) take about 8 minutes;
# `make run` (NS=1024 DURATION=0.1) about 95 s; DURATION=2 gives
# steadier numbers. N needs 2N file descriptors: an N that does not fit the hard open-file limit
# is skipped with a message.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(realpath -m "${1:-$root/build/release}")
ns=${NS:-"1024 4096"}
threads=${THREADS:-"1 2 4 8 16 32 64"}
designs=${DESIGNS:-"sharded global throttled rt-sharded rt-global rt-throttled rt-adaptive rt-adaptive-uring rt-adaptive+task"}
patterns=${PATTERNS:-"burst trickle"}
repeats=${REPEATS:-3}
duration=${DURATION:-0.25}
transport=${TRANSPORT:-tcp}
max_events=${MAX_EVENTS:-128}
arm=${ARM:-oneshot}
use_go=${GO:-auto}
time_polls=${TIME_POLLS:-1}
warmup=${WARMUP:-}
out=${OUT:-$build/storm.csv}

die() {
  echo "run_storm: $*" >&2
  exit 2
}
for v in repeats max_events; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"; done
[[ $duration =~ ^[0-9]*\.?[0-9]+$ ]] || die "DURATION must be a number of seconds"
[ -z "$warmup" ] || [[ $warmup =~ ^[0-9]*\.?[0-9]+$ ]] || die "WARMUP must be a number of seconds"
for n in $ns $threads; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "NS and THREADS take positive integers"; done
for d in $designs; do
  [[ $d =~ ^(rt-)?(sharded|global|throttled|adaptive)(-uring)?(\+task)?$ ]] || die "unknown design '$d'"
  if [[ $d == *+task && $d != rt-* ]]; then die "'$d': only the rt-* designs run a task driver"; fi
done
for p in $patterns; do [[ $p =~ ^(burst|trickle|stay-ready)$ ]] || die "unknown pattern '$p'"; done
[[ $transport =~ ^(tcp|unix)$ ]] || die "TRANSPORT must be tcp or unix"
[[ $arm =~ ^(oneshot|edge)$ ]] || die "ARM must be oneshot or edge"
[[ $use_go =~ ^(auto|off)$ ]] || die "GO must be auto or off"
[[ $time_polls =~ ^[01]$ ]] || die "TIME_POLLS must be 1 or 0"
time_polls_flag=false
[ "$time_polls" = 1 ] && time_polls_flag=true

storm=$build/bench/storm
if [ ! -x "$storm" ]; then
  echo "run_storm: building storm (Release) in $build" >&2
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >&2
  cmake --build "$build" -j "$(nproc)" --target storm >&2
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
[ "$build_type" = Release ] ||
  echo "run_storm: WARNING: $build is a '${build_type:-unknown}' build, not Release" >&2

storm_go=""
go_desc="none"
if [ "$use_go" = auto ]; then
  if command -v go >/dev/null; then
    storm_go=$build/storm_go
    GOCACHE=${GOCACHE:-$build/go-cache} go build -o "$storm_go" "$root/bench/peers/go/storm.go"
    go_desc="$(go version | awk '{ print $3 }'), GOMAXPROCS = T"
  else
    echo "run_storm: go is not installed: no Go peer (apt-get install golang-go)" >&2
  fi
fi

# N connections are 2N descriptors; raise the soft limit as far as the hard one allows.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard" 2>/dev/null || true
limit=$(ulimit -n)
read -r -a thread_list <<< "$threads"
read -r -a design_list <<< "$designs"
max_t=$(printf '%s\n' "${thread_list[@]}" | sort -n | tail -1)
threads_csv=$(IFS=,; echo "${thread_list[*]}")
designs_csv=$(IFS=,; echo "${design_list[*]}")
n_designs=${#design_list[@]}

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
warm_desc=${warmup:+$warmup s}
warm_desc=${warm_desc:-0.1 s per 1,024 connections}
kernel=$(uname -r)
n_threads=${#thread_list[@]}
echo "storm matrix: kernel $kernel, $(nproc) CPUs, commit $commit, $transport, max_events $max_events," \
  "arm $arm, ${duration}s x $repeats runs per cell after $warm_desc of warm-up each," \
  "open-file limit $limit," \
  "Go peer: $go_desc"
echo "  N: $ns; T: $threads; designs: $designs; patterns: $patterns;" \
  "runtime polls $([ "$time_polls_flag" = true ] && echo "timed" || echo "untimed (no poll figures for rt-*)")"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other load skews every figure)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
raw=$tmp/raw.csv
: > "$raw"
start=$(date +%s)
step=0
steps=0
for n in $ns; do for p in $patterns; do steps=$((steps + 1)); done; done
for n in $ns; do
  need=$((2 * n + max_t + 32))
  if [ "$need" -gt "$limit" ]; then
    echo "run_storm: skipping N=$n: needs about $need file descriptors, the open-file limit is $limit" >&2
    continue
  fi
  warm=${warmup:-$(awk -v n="$n" 'BEGIN { printf "%.3f", 0.1 * n / 1024 }')}
  for p in $patterns; do
    step=$((step + 1))
    echo "run_storm: [$step/$steps] $p N=$n: $((n_designs * n_threads * repeats)) storm runs" \
      "($(($(date +%s) - start)) s elapsed)" >&2
    rc=0
    "$storm" --csv --pattern "$p" --connections "$n" --transport "$transport" \
      --design "$designs_csv" --threads "$threads_csv" --repeats "$repeats" \
      --duration "$duration" --warmup "$warm" --max_events "$max_events" --arm "$arm" \
      --time_polls="$time_polls_flag" >> "$raw" || rc=$?
    [ "$rc" = 3 ] && continue
    [ "$rc" = 0 ] || { echo "run_storm: storm failed (status $rc)" >&2; exit 1; }
    if [ -n "$storm_go" ] && [ "$p" != stay-ready ]; then
      rc=0
      "$storm_go" -csv -pattern "$p" -connections "$n" -transport "$transport" \
        -threads "$threads_csv" -repeats "$repeats" -duration "$duration" -warmup "$warm" \
        >> "$raw" || rc=$?
      [ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "run_storm: storm_go failed (status $rc)" >&2; exit 1; }
    fi
  done
done

header="commit,kernel,impl,design,transport,pattern,connections,threads,max_events,arm,repeat"
header+=",duration_s,wall_s,stop,wall_ok,rounds,events,events_per_s,cpu_s,cpu_s_per_Mevents"
header+=",poll_ns_per_event,poll_cpu_ns_per_event,poll_cpu_share,events_per_poll"
header+=",vcsw_per_1k_events,spurious_per_event,stale_events,idle_timeouts"
header+=",total_cpu_s_per_Mevents,total_vcsw_per_1k_events"
{
  echo "$header"
  sed "s/^/$commit,$kernel,/" "$raw"
} > "$out"

echo
echo "Median of $repeats runs by events/s [min-max]; cpu_s/Mev: CPU seconds per million events," \
  "workers only (process minus the driver thread; in +task rows the driver is a task, so it is" \
  "in) and whole process (driver included, as Go" \
  "reports it); poll: inside epoll_wait per event returned, wall and thread CPU, and that CPU's" \
  "share of the workers' CPU; spur/ev: polls with nothing (fresh) to handle plus futile" \
  "wakeups, per event; vcsw/1k: voluntary context switches per 1000 events, workers only" \
  "(*: whole process). '-': Go cannot report it."
medians=$tmp/medians.txt
awk -F, -v patterns="$patterns" -v ns="$ns" -v threads="$threads" -v designs="$designs go" -v med="$medians" '
  function val(x) { return x == "NA" ? "-" : x }
  {
    # impl,design,...: columns as in the CSV header minus commit,kernel
    d = ($1 == "go") ? "go" : $2
    key = $4 SUBSEP $5 SUBSEP $6 SUBSEP d
    k = ++cnt[key]
    eps[key, k] = $16; line[key, k] = $0
    if ($13 == 0) late[key]++
  }
  function fmt(x, p) { return x == "NA" ? "-" : sprintf(p, x) }
  END {
    printf "%-10s %5s %3s %-22s %10s %21s %8s %8s %17s %7s %6s %6s %8s %8s %7s\n", "pattern", "N", "T",
      "design", "events/s", "[min-max]", "cpu/Mev", "process", "[min-max]", "poll ns", "cpu ns",
      "share", "ev/poll", "vcsw/1k", "spur/ev"
    np = split(patterns, P, " "); nn = split(ns, N, " "); nt = split(threads, T, " ")
    nd = split(designs, D, " ")
    for (a = 1; a <= np; a++) for (b = 1; b <= nn; b++) for (c = 1; c <= nt; c++) {
      for (e = 1; e <= nd; e++) {
        key = P[a] SUBSEP N[b] SUBSEP T[c] SUBSEP D[e]
        n = cnt[key]; if (n == 0) continue
        for (i = 1; i <= n; i++) idx[i] = i
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
          if (eps[key, idx[j]] + 0 < eps[key, idx[i]] + 0) { t = idx[i]; idx[i] = idx[j]; idx[j] = t }
        split(line[key, idx[int((n + 1) / 2)]], f, ",")
        lo = hi = ""
        for (i = 1; i <= n; i++) {
          split(line[key, i], g, ","); x = g[27] + 0
          if (lo == "" || x < lo) lo = x
          if (hi == "" || x > hi) hi = x
        }
        printf "%-10s %5d %3d %-22s %10.0f %10.0f-%-10.0f %8s %8.3f %8.3f-%-8.3f %7s %6s %6s %8s %8s %7s%s\n",
          P[a], N[b], T[c], D[e], f[16], eps[key, idx[1]], eps[key, idx[n]],
          fmt(f[18], "%.3f"), f[27], lo, hi, fmt(f[19], "%.0f"), fmt(f[20], "%.0f"),
          (f[21] == "NA" ? "-" : sprintf("%.0f%%", 100 * f[21])), fmt(f[22], "%.1f"),
          (f[23] == "NA" ? sprintf("%.1f*", f[28]) : sprintf("%.1f", f[23])), (f[24] == "NA" ? "-" : sprintf("%.3f", f[24])),
          (late[key] ? "  (" late[key] " run(s) off --duration by >20%)" : "")
        printf "%s %d %d %s %.0f %.4f\n", P[a], N[b], T[c], D[e], f[16], f[27] > med
      }
    }
  }' "$raw"
echo "raw runs: $out"
chart=${out%.csv}.png
if command -v gnuplot >/dev/null; then
  first_n=${ns%% *}
  set -- $patterns
  {
    echo "set terminal pngcairo size 1400,$((450 * $#)) noenhanced"
    echo "set output '$chart'"
    echo "set multiplot layout $#,2 title 'ready storm, N = $first_n, commit $commit (median of $repeats runs)'"
    echo "set logscale x 2; set xlabel 'threads (T)'; set key outside right; set grid"
    for p in $patterns; do
      for metric in "5:events/s" "6:CPU s per million events (process)"; do
        col=${metric%%:*}
        echo "set title '$p: ${metric#*:}'"
        echo -n "plot"
        sep=""
        for d in $designs go; do
          grep -q "^$p $first_n [0-9]* $d " "$medians" || continue
          echo -n "$sep '< grep \"^$p $first_n [0-9]* $d \" $medians' using 3:$col with linespoints title '$d'"
          sep=","
        done
        echo
      done
    done
    echo "unset multiplot"
  } > "$tmp/chart.gp"
  if gnuplot "$tmp/chart.gp" 2> "$tmp/gnuplot.err"; then
    echo "chart: $chart"
  else
    echo "chart: not drawn (gnuplot failed: $(head -c 300 "$tmp/gnuplot.err"))"
  fi
else
  echo "chart: not drawn (gnuplot is not installed: apt-get install gnuplot-nox)"
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - start)) s"
