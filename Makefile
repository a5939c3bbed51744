# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

BENCH_STAMP := $(VENV)/.installed-bench

NOTEBOOKS_STAMP := $(VENV)/.installed-notebooks

# Installs come from the lock (uv.lock, exported with hashes to requirements/), not from
# the ranges in pyproject.toml: every machine gets the versions the tests passed with.
# --no-deps: the exports hold every package already; anything unlocked fails the install.
LOCKED_INSTALL = $(BIN)/python -m pip install --quiet --require-hashes --no-deps -r
UV_VERSION := 0.13.9

# The hot modules compiled with mypyc when a C compiler is found (dataflows/native.py),
# rebuilt when their source changed; without one the jobs run the pure-Python modules.
NATIVE = $(BIN)/python tools/build_native.py

.PHONY: run test lint types docs pytest pytest-pure native fuzz bench bench-quick soak notebooks lock clean

$(STAMP): pyproject.toml requirements/dev.txt
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v < (3, 13) else "sensorwax needs Python 3.11 or 3.12 (Bytewax 0.21.1 has no wheels for %d.%d): run make PYTHON=python3.12" % v)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(LOCKED_INSTALL) requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

# Byte code for the modules every job imports, written now: where PYTHONDONTWRITEBYTECODE
# is set (this machine sets it), Python would compile them again at each job's start:
# 0.05 s of CPU a job process, measured (and the suite starts some hundred).
native: $(STAMP)
	$(NATIVE)
	$(BIN)/python -m compileall -q -j 0 connectors dataflows

run: native
	$(BIN)/python -m bytewax.run dataflows.sensor_stats

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy connectors dataflows

# Three processes on two cores: most of the slow tests wait on paced streams, not on the CPU
# (two kept the cores 59% busy: 431 s; three, 83%: 292 s). Every test
# waits for the condition it means, so a busy machine slows them without failing them.
PYTEST_WORKERS ?= 3
pytest: native
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS)

# The tests that hold the compiled modules' output to the references (hypothesis
# properties, the pandas oracle), run again on the pure-Python modules; the runtime ones
# among them (tokens, signals, fatal errors) exercise no compiled code.
PURE_TESTS = tests/dataflows/test_fast_formats.py tests/dataflows/test_readings.py \
	tests/dataflows/test_timestamps.py \
	tests/dataflows/test_stream_breaks.py \
	tests/dataflows/test_key_groups.py tests/dataflows/test_sensor_stats.py tests/test_native.py
pytest-pure: native
	SENSORWAX_NATIVE=0 $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m "not runtime" $(PURE_TESTS)

test: lint types docs pytest pytest-pure

# The reference docs (docs/, mkdocs.yml) built strictly into build/site: a broken link, a
# missing page or an API reference that does not resolve fails; the settings page is
# written from dataflows/config.py at build time (tools/docs_settings.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Coverage-guided fuzzing of the parsers for a fixed number of inputs; findings stop it
# and leave a crash-* file. New corpus entries go to .fuzz-corpus (not committed).
FUZZ_RUNS ?= 200000
fuzz: $(STAMP)
	mkdir -p .fuzz-corpus
	$(BIN)/python -m fuzz.fuzz_parser -runs=$(FUZZ_RUNS) -timeout=10 .fuzz-corpus fuzz/seeds

$(BENCH_STAMP): $(STAMP) requirements/bench.txt
	$(LOCKED_INSTALL) requirements/bench.txt
	touch $(BENCH_STAMP)

# Loopback only, bounded loads; writes benchmarks/results.md (bench-quick only prints).
bench: $(BENCH_STAMP) native
	$(BIN)/python -m benchmarks.run

bench-quick: $(BENCH_STAMP) native
	$(BIN)/python -m benchmarks.run --quick

# A day of event time for 2,000 sensors through the main job with recovery, two SIGKILLs,
# expiring tokens and drops, into both formats, each held to pandas (a few minutes).
soak: native
	$(BIN)/python -m benchmarks.soak

$(NOTEBOOKS_STAMP): $(STAMP) requirements/notebooks.txt
	$(LOCKED_INSTALL) requirements/notebooks.txt
	touch $(NOTEBOOKS_STAMP)

# JupyterLab on notebooks/, with what the notebooks need (Ctrl+C stops it).
notebooks: $(NOTEBOOKS_STAMP)
	$(BIN)/jupyter lab notebooks/

# Resolve afresh: the newest releases pyproject.toml's ranges allow, for Python 3.11 and
# 3.12 on every platform, into uv.lock; then the sets above, exported with hashes.
# LOCK_FLAGS= (empty) keeps every version that still fits, after a change to pyproject.toml.
LOCK_FLAGS ?= --upgrade
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/uv lock $(LOCK_FLAGS)
	$(BIN)/uv export --frozen --quiet --no-emit-project --group build --extra dev -o requirements/dev.txt
	$(BIN)/uv export --frozen --quiet --no-emit-project --group build --extra dev --extra bench -o requirements/bench.txt
	$(BIN)/uv export --frozen --quiet --no-emit-project --group build --extra dev --extra notebooks -o requirements/notebooks.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .fuzz-corpus
