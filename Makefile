# Entry points for newcomers and CI. `make run` and `make test` install missing Debian packages
# first (cmake/install-deps.sh), so both work on a fresh Debian 12 machine.
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: setup build run run-echo test test-asan test-tsan fuzz format clean

setup:
	@bash cmake/install-deps.sh

# Only what `make run` runs, so a first run on a fresh machine is quick; `make test` builds all.
build: setup
	@bash cmake/install-deps.sh run
	cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build build/release -j $(JOBS) --target storm echo_server loadgen idle_clients

# The ready-storm comparison (bench/storm/run_storm.sh): N = 1024 connections, T = 1..64
# threads, burst and trickle, the bare poll designs, the runtime in each poll mode and the Go
# peer, 3 runs of 0.1 s per cell after 0.1 s of warm-up each; prints the median table and
# writes CSV + PNG chart.
run: build
	NS=1024 DURATION=0.1 bash bench/storm/run_storm.sh build/release

# The echo benchmark that `make run` used to be: echo_server vs loadgen, pipeline 1 and 16.
run-echo: build
	bash bench/run_echo.sh build/release

test: setup
	cmake -S . -B build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	cmake --build build/test -j $(JOBS)
	cd build/test && ctest --output-on-failure -j $(JOBS)

# Sanitizer builds run the same suite. Tests scale themselves down (SHARDLOOP_SANITIZED).
test-asan: setup
	cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDLOOP_SANITIZE=address,undefined $(CMAKE_FLAGS)
	cmake --build build/asan -j $(JOBS)
	cd build/asan && ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer's shadow memory needs a fixed layout; `setarch -R` turns off address
# randomisation for the run, which kernels with large mmap_rnd_bits otherwise break.
test-tsan: setup
	cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDLOOP_SANITIZE=thread $(CMAKE_FLAGS)
	cmake --build build/tsan -j $(JOBS)
	cd build/tsan && setarch $$(uname -m) -R ctest --output-on-failure -j $(JOBS)

# libFuzzer targets (needs clang and its fuzzer runtime): replays the seed corpora, then fuzzes
# each target for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz:
	@bash cmake/install-deps.sh fuzz
	JOBS=$(JOBS) bash tests/fuzz/run_fuzz.sh $(FUZZ_SECONDS)

format:
	find runtime net scheduler examples bench tests -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	rm -rf build
