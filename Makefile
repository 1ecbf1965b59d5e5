# jobq: `make run` starts a queue on the embedded store; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INFRA_STAMP := $(VENV)/.installed-infra
PROTOS := $(wildcard proto/jobq/v1/*.proto)
GENERATED := app/jobq/v1/job_pb2.py

.PHONY: run test test-fast lint typecheck proto bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# The CDK app's libraries are large and only the infra tests need them.
$(INFRA_STAMP): requirements-infra.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-infra.txt
	touch $@

$(GENERATED): $(PROTOS) $(STAMP)
	PYTHON=$(PY) scripts/gen-proto.sh

proto: $(STAMP)
	PYTHON=$(PY) scripts/gen-proto.sh

## run: server + one worker with the example tasks on a SQLite file under .jq/
run: $(STAMP) $(GENERATED)
	scripts/run.sh

## test: every test suite (installs what it needs first)
test: $(STAMP) $(INFRA_STAMP) $(GENERATED)
	scripts/test.sh -q --durations=40 -n 2 --dist loadscope --no-loadscope-reorder

## test-fast: unit and contract tests only
test-fast: $(STAMP) $(GENERATED)
	$(PY) -m pytest -q tests/unit tests/contract

lint: $(STAMP) $(GENERATED)
	$(VENV)/bin/ruff check app tests
	$(VENV)/bin/ruff format --check app tests

typecheck: $(STAMP) $(GENERATED)
	$(VENV)/bin/mypy

## bench: end-to-end throughput and latency through the gRPC API
bench: $(STAMP) $(GENERATED)
	$(PY) -m benchmarks.e2e $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .jq .cache app/jobq/v1/*_pb2*.py app/jobq/v1/*_pb2*.pyi
