# Two commands from a fresh clone: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: install migrate seed run test lint format openapi bench bench-history lock clean

$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

migrate: install
	$(BIN)/cdmo-metrics migrate

seed: migrate
	$(BIN)/cdmo-metrics seed

run: seed
	$(BIN)/cdmo-metrics serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml

test: lint
	$(BIN)/pytest

# The benchmark suite (docs/benchmarks.md); wrk comes from Debian's packages, and Datasette (the
# cold-cache comparison) into a virtualenv of its own, from its own hashed lock.
BENCH_VENV := .venv-bench

$(BENCH_VENV)/.installed: bench/requirements.lock
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes \
		-r bench/requirements.lock
	touch $@

bench: install $(BENCH_VENV)/.installed
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/run.py --datasette $(BENCH_VENV)/bin/datasette \
		--granian $(BENCH_VENV)/bin/granian $(BENCH_ARGS)

# Imports and as_of reads at 10,000 and 100,000 metrics on SQLite and PostgreSQL
# (docs/benchmarks.md); BENCH_POSTGRES_URL names the PostgreSQL server.
bench-history: install
	$(BIN)/python bench/history.py $(HISTORY_ARGS)

# Regenerate the committed OpenAPI document after changing the API (a test compares them).
openapi: install
	$(BIN)/cdmo-metrics openapi > openapi.json

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Regenerate the locks after changing dependencies in pyproject.toml (needs uv: pip install uv).
lock:
	uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -q -o requirements.lock
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -q \
		-o requirements-dev.lock

clean:
	rm -rf $(VENV) $(BENCH_VENV) data .pytest_cache .mypy_cache .ruff_cache
