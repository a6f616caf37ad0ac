# skewwatch: `make demo` runs the whole path on the embedded broker; `make test` runs the tests.
# Both create .venv (Python 3.11) and install the pinned stack only when the dependency files changed.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
# test processes (pytest-xdist); the slowest tests mostly wait on brokers and subprocesses
JOBS   ?= 2
# the compiled modules (collectors/_scan.c, monitor/stats/_exact.c) are built by the install too: a change reinstalls
STAMP  := $(VENV)/.stamp-$(shell cat pyproject.toml constraints.txt setup.py collectors/_scan.c monitor/stats/_exact.c | cksum | cut -d' ' -f1)

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

# --no-compile: a module is compiled when it is first imported, rather than every file of the stack up front
# (that step alone took 1 min 50 s of the 3 min 30 s install here)
$(STAMP): pyproject.toml constraints.txt setup.py collectors/_scan.c monitor/stats/_exact.c
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or: make PYTHON=/path/to/python3.11)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet --no-compile -c constraints.txt -e '.[all]'
	@rm -f $(VENV)/.stamp-*
	@touch $@

demo: install
	$(VENV)/bin/skewwatch demo --keep-running

test: install
	$(PY) -m pytest -q -n $(JOBS)

test-fast: install
	$(PY) -m pytest -q -n $(JOBS) -m "not slow"

bench: install
	$(PY) bench/bench_stats_update.py
	$(PY) bench/bench_compare.py

clean:
	rm -rf artifacts .pytest_cache
