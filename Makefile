# The two commands: `make demo` and `make test`. Both install what they need first.
# README: Python 3.11+. Default: the first of these that exists and is 3.11+ (looked up only
# when .venv is created); PYTHON=... on the command line or in the environment wins.
PYTHON_CANDIDATES := python3.11 python3.12 python3.13 python3
PY_311 := -c 'import sys; sys.exit(sys.version_info < (3, 11))'
ifeq ($(origin PYTHON),undefined)
PYTHON = $(shell for p in $(PYTHON_CANDIDATES); do $$p $(PY_311) >/dev/null 2>&1 && { echo $$p; break; }; done)
endif
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# CPU wheel of torch, installed first so no later requirement can pull a CUDA build. PyPI's
# Linux wheel is the CUDA build; the CPU one comes from PyTorch's index (TORCH_INDEX) when it
# answers, else from pip's own sources (these machines: a local CPU wheel, and no route to the
# index, which is then left out rather than retried for each of torch's requirements).
# TORCH_INDEX= leaves pip's own sources.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PYTEST_ARGS ?=
# Test processes (pytest-xdist), each with its own embedded broker and database. The suite mostly
# waits (worker start-up, batch windows, rebalances): 2 processes halve it on a 2-core machine and
# leave the CPU headroom its timing needs. TEST_WORKERS=0 runs it in this process, one test at a time.
TEST_WORKERS ?= 2

.PHONY: setup demo test test-fast lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { py='$(PYTHON)'; \
	  if [ -z "$$py" ]; then echo "error: no Python 3.11+ found (tried $(PYTHON_CANDIDATES)); pass PYTHON=..." >&2; exit 1; fi; \
	  $$py $(PY_311) 2>/dev/null || { echo "error: PYTHON=$$py is not Python 3.11+ (or does not run)" >&2; exit 1; }; \
	  $$py -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	index=$$($(BIN)/python -c 'import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], method="HEAD"), timeout=5)' \
	  '$(TORCH_INDEX)' >/dev/null 2>&1 && echo '--extra-index-url $(TORCH_INDEX)'); \
	  if [ -z "$$index" ] && [ -n '$(TORCH_INDEX)' ]; then \
	    echo "note: $(TORCH_INDEX) did not answer: torch comes from pip's own sources (a CUDA build unless they hold a CPU wheel)" >&2; fi; \
	  $(BIN)/python -m pip install -q $$index "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[all]'
	@touch $(STAMP)

demo: setup
	$(BIN)/reviewscore demo

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --cov --cov-report=term --cov-report=xml:coverage.xml --durations=15 $(PYTEST_ARGS)
	@# The query API's own bar (issue #5): its line coverage, checked on whole-suite runs only.
	@if [ -z "$(PYTEST_ARGS)" ]; then \
	  printf 'query_api line coverage, at least 90 %%: '; \
	  $(BIN)/python -m coverage report --include='query_api/*' --fail-under=90 --format=total; fi

test-fast: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python bench/model.py
	$(BIN)/python bench/stream.py
	$(BIN)/python bench/api.py

clean:
	rm -rf .reviewscore .pytest_cache .mypy_cache .ruff_cache coverage.xml .coverage*
