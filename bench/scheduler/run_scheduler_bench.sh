#!/usr/bin/env bash
# The scheduler micro-benchmarks: work-stealing deque operations and BlockingPool throughput for
# N = 1..8 submitters x M = 1..4 pool threads (with the one-mutex pool as a side-by-side
# baseline), plus the futex park/unpark round trip. Each benchmark repeats REPEATS times; the
# table shows median and stddev, and the JSON (with kernel, CPU count and commit as context)
# goes to $OUT. Compare rows of one run as ratios; absolute figures on a shared 2-CPU VM drift.
#
# Usage: bench/scheduler/run_scheduler_bench.sh [BUILD_DIR] [extra benchmark flags]
#        env: REPEATS=3 MIN_TIME=0.2 OUT=BUILD_DIR/scheduler_bench.json
set -euo pipefail
build=${1:-build/release}
shift || true
repeats=${REPEATS:-3}
min_time=${MIN_TIME:-0.2}
out=${OUT:-$build/scheduler_bench.json}
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "shardloop scheduler_bench: $(uname -r), $(nproc) CPUs, commit $commit," \
     "$repeats repetitions of >= ${min_time}s; JSON in $out"
"$build/bench/scheduler/scheduler_bench" \
  --benchmark_repetitions="$repeats" --benchmark_report_aggregates_only=true \
  --benchmark_min_time="$min_time" \
  --benchmark_context=kernel="$(uname -r)" --benchmark_context=commit="$commit" \
  --benchmark_out="$out" --benchmark_out_format=json "$@"
