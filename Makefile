# packetd — `make run` installs the program (runtime dependencies only) and runs `packetd watch`;
# `make test` adds the development extras and the test tools and runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: bytecode run test setup test-deps lint typecheck unit bench bench-live bench-replay clean fuzz wheel compiled test-compiled

# the program and what it needs at run time (33 packages); `make run` stops here
$(BIN)/.runtime: pyproject.toml
	sh scripts/bootstrap.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	$(MAKE) -s bytecode
	touch $@

# An editable install leaves src/ without bytecode, and with PYTHONDONTWRITEBYTECODE set (as some hosts
# and images do) every `packetd` start then recompiles ~160 modules: 0.2 s of CPU per process, as much as
# decoding a 10 MB capture. Compiled once here; a stale .pyc is only recompiled in memory, never wrong.
bytecode:
	$(BIN)/python -m compileall -q src

# the development extras on top (linters, type checker, test clients and servers)
$(BIN)/.installed: $(BIN)/.runtime
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

run: $(BIN)/.runtime
	sh scripts/run.sh

test-deps: setup
	sh scripts/test-deps.sh
	sh scripts/test-tools.sh $(VENV)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m "not live and not server and not root"

test: setup test-deps lint typecheck
	PACKETD_EXPECT_BUILD=pure $(BIN)/pytest
	@if [ "$(TEST_COMPILED)" = 1 ] && [ "$(HAVE_CC)" = 1 ]; then $(MAKE) test-compiled; \
	elif [ "$(TEST_COMPILED)" = 1 ]; then echo "make test: the compiled build is not tested: no C compiler or Python.h (apt-get install gcc python3-dev)" >&2; \
	else echo "make test: the compiled build is not tested (TEST_COMPILED=0)" >&2; fi

# `make test` runs the suite against the pure build, then (issue 15) the compiled one, when a C compiler
# and Python.h are here (scripts/test-deps.sh installs gcc and python3-dev, so CI always has them).
# TEST_COMPILED=0 make test skips the compiled pass.
TEST_COMPILED ?= 1

# -- the optional compiled build (issue 15): the modules of src/packetd/buildinfo.py compiled by mypyc ---
# and the C accelerator of L2-L4 decoding, src/packetd/net/_packet.c (PACKETD_PURE=1 at run time turns it off).
# `make wheel`: the binary wheel in dist/ (setup.py: PACKETD_COMPILE=1; built with this venv's mypy, which
# type-checks what it compiles, hence --no-build-isolation). `make compiled`: .venv-compiled with that wheel
# and the dev extras (bench/vs_tshark.py measures it beside .venv). The default `pip install .` stays pure.
CVENV  := .venv-compiled
CBIN   := $(CVENV)/bin
HAVE_CC = $(shell $(BIN)/python -c "import os, shutil, sysconfig; cc = (sysconfig.get_config_var('CC') or 'cc').split()[0]; print(int(bool(shutil.which(cc)) and os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))))" 2>/dev/null)

wheel: setup
	rm -rf build
	PACKETD_COMPILE=1 $(BIN)/pip wheel -q --no-build-isolation --no-deps -w dist .

compiled: wheel
	test -x $(CBIN)/python || $(PYTHON) -m venv $(CVENV)
	$(CBIN)/pip install -q --upgrade pip
	whl="$$(ls -t dist/packetd-*-cp*.whl | head -1)"; \
	$(CBIN)/pip install -q "$$whl[dev]" && $(CBIN)/pip install -q --force-reinstall --no-deps "$$whl"

# the suite against the compiled build: pytest of .venv-compiled imports packetd from its site-packages
# (tests/test_build.py checks that, and tests/helpers/build.py points subprocesses there too). Not the
# whole suite: the wheel (~3 CPU min) and the venv add ~6 min to CI's ~17, and a second full run (~13 min)
# would take CI past 32 min; the tests that start servers or capture live spend their time waiting on the
# servers, not in the compiled modules. Everything else runs: decoders' tables, golden files, the flow
# layer, fuzzing, the CLI on files. COMPILED_TESTS= (empty) runs it all.
COMPILED_TESTS ?= -m "not live and not server and not root"
test-compiled: compiled
	PACKETD_EXPECT_BUILD=compiled PACKETD_HELM_LIB=$(CURDIR)/$(VENV)/tools/libhelm.so $(CBIN)/pytest $(COMPILED_TESTS)

# issue 15: all ten protocols (eleven cases) against tshark on replicas of real captures, the pure build and
# the compiled one (.venv-compiled from `make wheel`, skipped with a note when absent), 3 alternating rounds;
# the table goes into BENCHMARKS.md between the bench markers. Records the real captures first when
# bench/out/real/ lacks them (root: tcpdump on lo). BENCH_ARGS="--cases redis,dns --runs 5" narrows it.
bench: test-deps bytecode
	$(BIN)/python bench/vs_tshark.py --markdown BENCHMARKS.md $(BENCH_ARGS)

# live capture at the load generators' maximum (redis-benchmark -P 1 / -P 16, h2load --h1 on nginx,
# pgbench): records vs requests sent, kernel drops, CPU; root (AF_PACKET on lo)
bench-live: test-deps
	$(BIN)/python bench/live_generators.py --markdown BENCHMARKS.md $(BENCH_ARGS)

# the older synthetic replays (HTTP/1 keep-alive; one per protocol): not part of `make bench`
bench-replay: setup
	$(BIN)/python bench/http1_replay.py
	$(BIN)/python bench/proto_replay.py

clean:
	rm -rf $(VENV) $(CVENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

# the long fuzz campaign (issue 14): >= 1 M mutated corpus inputs per decoder, whole and split, results in
# fuzz-results/<decoder>.json; FUZZ_ARGS="--inputs 100000 mysql" for a shorter or narrower run
fuzz: setup
	nice -n 19 $(BIN)/python scripts/fuzz_campaign.py $(FUZZ_ARGS)
