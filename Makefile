# The README's two commands. Both install what is missing (Debian packages, as root), then build.
#   make run    build and start collecting with ./config.lua into SQLite (data/candled.db)
#   make test   build and run the whole test suite: once plainly, once under ASan + UBSan, then
#               each libFuzzer harness of tests/fuzz/ for FUZZ_SECONDS (25 s; `make fuzz`: 300 s)
DEPS := build-essential cmake pkg-config python3 liblua5.4-dev libuv1-dev libcurl4-openssl-dev \
        libsqlite3-dev lua-cjson-dev libedit-dev libh2o-dev libssl-dev chromium \
        libwebsockets-dev libwebsockets-evlib-uv clang
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
JOBS ?= 2
FUZZ_SECONDS ?= 25

.PHONY: deps build run test test-plain test-asan test-fuzz fuzz bench clean

# The last commit before the series layout (issue 18): the baseline of tests/bench/run_series.py.
PRE_SERIES = 323917e

deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j$(JOBS)

run: build
	./build/candled run --config config.lua

test: test-plain test-asan test-fuzz

test-plain: build
	ctest --test-dir build --output-on-failure -j$(JOBS)

test-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCANDLED_SANITIZE=ON >/dev/null
	cmake --build build-asan -j$(JOBS)
	$(SAN_ENV) ctest --test-dir build-asan --output-on-failure -j$(JOBS)

# libFuzzer (clang) on json.decode/decode_rows, csv.parse, the config loader, time.parse_iso and
# durations, the REPL frame reader; seeds in tests/fuzz/corpus/, findings fail the run.
test-fuzz: deps
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCANDLED_FUZZ=ON \
	  -DCANDLED_TESTS=OFF -DCANDLED_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	cmake --build build-fuzz -j$(JOBS) --target fuzzers
	$(SAN_ENV) ctest --test-dir build-fuzz -L fuzz --output-on-failure -j$(JOBS)

fuzz:
	$(MAKE) test-fuzz FUZZ_SECONDS=300

bench: deps
	cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-rel -j$(JOBS)
	python3 tests/bench/run_ingest.py --candled build-rel/candled --ceiling build-rel/tests/bench/sqlite_ceiling
	python3 tests/bench/run_budget.py --candled build-rel/candled
	python3 tests/bench/run_gecko_backfill.py --candled build-rel/candled
	python3 tests/bench/run_reload.py --candled build-rel/candled
	rm -rf build-old && mkdir -p build-old/src && git archive $(PRE_SERIES) | tar -x -C build-old/src
	cmake -S build-old/src -B build-old -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-old -j$(JOBS) --target candled sqlite_ceiling
	python3 tests/bench/run_series.py --candled build-rel/candled --old-candled build-old/candled \
	  --ceiling build-rel/tests/bench/sqlite_ceiling --old-ceiling build-old/tests/bench/sqlite_ceiling
	python3 tests/bench/run_migrate.py --candled build-rel/candled
	python3 tests/bench/run_backup.py --candled build-rel/candled
	python3 tests/bench/run_sources.py --candled build-rel/candled
	CRASH_ROUNDS=5 python3 tests/e2e/crash_test.py --candled $(CURDIR)/build-rel/candled --source $(CURDIR)
	python3 tests/bench/run_qlib.py --candled build-rel/candled --baseline build-rel/tests/bench/qlib_baseline
	python3 tests/bench/run_replay.py --candled build-rel/candled --baseline build-rel/tests/bench/replay_baseline
	python3 tests/bench/run_binance.py --candled build-rel/candled
	python3 tests/bench/run_ws.py --candled build-rel/candled

clean:
	rm -rf build build-asan build-rel build-old build-fuzz
