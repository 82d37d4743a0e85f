# packetd — `make run` installs the program (runtime dependencies only) and runs `packetd watch`;
# `make test` adds the development extras and the test tools and runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test setup test-deps lint typecheck unit bench bench-live bench-replay clean fuzz

# the program and what it needs at run time (33 packages); `make run` stops here
$(BIN)/.runtime: pyproject.toml
	sh scripts/bootstrap.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

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
	$(BIN)/pytest

# issue 15: all ten protocols (eleven cases) against tshark on replicas of real captures, the pure build and
# the compiled one (.venv-compiled from `make wheel`, skipped with a note when absent), 3 alternating rounds;
# the table goes into BENCHMARKS.md between the bench markers. Records the real captures first when
# bench/out/real/ lacks them (root: tcpdump on lo). BENCH_ARGS="--cases redis,dns --runs 5" narrows it.
bench: test-deps
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
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

# the long fuzz campaign (issue 14): >= 1 M mutated corpus inputs per decoder, whole and split, results in
# fuzz-results/<decoder>.json; FUZZ_ARGS="--inputs 100000 mysql" for a shorter or narrower run
fuzz: setup
	nice -n 19 $(BIN)/python scripts/fuzz_campaign.py $(FUZZ_ARGS)
