#!/usr/bin/env bash
# Installs the Debian packages shardloop builds and tests with, if any is missing.
# Uses sudo when not root; fails with a clear message when packages cannot be installed.
#   cmake/install-deps.sh          what `make run` and `make test` need
#   cmake/install-deps.sh fuzz     also clang and its libFuzzer runtime, for `make fuzz`
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  liburing-dev libabsl-dev libgflags-dev libgtest-dev libgmock-dev libbenchmark-dev
)
if [ "${1:-}" = "run" ]; then
  # `make run` (bench/storm/run_storm.sh): gnuplot draws the chart, Go builds the Go peer.
  packages+=(gnuplot-nox golang-go)
fi
if [ "${1:-}" = "fuzz" ]; then
  # libFuzzer targets: clang and its fuzzer/sanitizer runtime.
  packages+=(clang libclang-rt-14-dev)
fi
# Optional tools that tests and `make run` use when present: strace for syscall counts, redis-tools
# (redis-cli, redis-benchmark), wrk and curl to drive the example servers with real clients.
optional=(strace redis-tools wrk curl)

missing=()
for p in "${packages[@]}" "${optional[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "install-deps: apt-get not found; install these packages by hand: ${missing[*]}" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get update -qq || ! $sudo apt-get install -y -qq "${missing[@]}"; then
  echo "install-deps: apt-get failed to install: ${missing[*]}" >&2
  exit 1
fi
