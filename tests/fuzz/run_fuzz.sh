#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build/fuzz, replays every committed seed
# corpus, then fuzzes the targets side by side for N seconds of wall time each (default 60).
# CI calls it as is.
#
#   tests/fuzz/run_fuzz.sh          # 60 s per target
#   tests/fuzz/run_fuzz.sh 10       # 10 s per target
#   tests/fuzz/run_fuzz.sh 0        # build and replay the corpora only
#
# Needs clang++ and its libFuzzer runtime (Debian: clang, libclang-rt-14-dev). Inputs that reach
# new coverage are kept in build/fuzz/corpus/<target>, not in the committed seeds; a crash
# leaves build/fuzz/artifacts/<target>/crash-* (replay: build/fuzz/tests/fuzz/<target> FILE)
# and makes the script fail.
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build/fuzz
jobs=${JOBS:-$(nproc)}
targets=(http_parser_fuzz resp_parser_fuzz frame_codec_fuzz)

cxx=${CXX_FUZZ:-clang++}
if ! command -v "$cxx" >/dev/null; then
  echo "run_fuzz: $cxx not found; install clang (Debian: apt-get install clang)" >&2
  exit 1
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' \
  >"$probe/probe.cc"
if ! "$cxx" -fsanitize=fuzzer "$probe/probe.cc" -o "$probe/probe" 2>"$probe/err"; then
  echo "run_fuzz: $cxx cannot link libFuzzer; install its runtime (Debian 12: libclang-rt-14-dev)" >&2
  cat "$probe/err" >&2
  exit 1
fi

cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DSHARDLOOP_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target "${targets[@]}" -j "$jobs"

summary=()
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/$t
  seeds=$root/tests/fuzz/corpus/$t
  artifacts=$build/artifacts/$t
  mkdir -p "$build/corpus/$t" "$artifacts"
  # Replay: every committed seed, once, as a regression test.
  n_seeds=$(find "$seeds" -type f | wc -l)
  echo "run_fuzz: $t: replaying $n_seeds seeds"
  find "$seeds" -type f -print0 | xargs -0 "$bin" -artifact_prefix="$artifacts/" >"$build/$t.replay.log" 2>&1 || {
    tail -n 40 "$build/$t.replay.log" >&2
    echo "run_fuzz: $t: a seed input fails (log: $build/$t.replay.log)" >&2
    exit 1
  }
  summary+=("$t: $n_seeds seeds replayed")
done
if [ "$seconds" -le 0 ]; then
  printf 'run_fuzz: %s\n' "${summary[@]}"
  exit 0
fi

# Fuzz: the targets run side by side, each for $seconds s of wall time. New inputs go to
# build/fuzz/corpus/<target> (listed first); the committed seeds are only read.
declare -A pids
for t in "${targets[@]}"; do
  dict=()
  [ -f "$root/tests/fuzz/$t.dict" ] && dict=(-dict="$root/tests/fuzz/$t.dict")
  echo "run_fuzz: $t: fuzzing for $seconds s"
  "$build/tests/fuzz/$t" "$build/corpus/$t" "$root/tests/fuzz/corpus/$t" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=10 -artifact_prefix="$build/artifacts/$t/" \
    -print_final_stats=1 >"$build/$t.fuzz.log" 2>&1 &
  pids[$t]=$!
done
failed=0
for t in "${targets[@]}"; do
  if ! wait "${pids[$t]}"; then
    tail -n 60 "$build/$t.fuzz.log" >&2
    echo "run_fuzz: $t: crash (artifacts in $build/artifacts/$t, log: $build/$t.fuzz.log)" >&2
    failed=1
    continue
  fi
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$build/$t.fuzz.log" | awk '{print $2}')
  cov=$(grep -o 'cov: [0-9]*' "$build/$t.fuzz.log" | tail -n 1 | awk '{print $2}')
  summary+=("$t: $runs runs in $seconds s, coverage $cov edges, no crash")
done
printf 'run_fuzz: %s\n' "${summary[@]}"
exit "$failed"
