# Two commands from a fresh clone: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# Two environments: `.venv` from the development lock (tests, linters, `make install`) and
# `.venv-run` from the runtime lock alone (`make run`: no pytest, fuzzers or linters).
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)
RUN_VENV := .venv-run
RUN_BIN := $(RUN_VENV)/bin
RUN_STAMP := $(RUN_VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: install install-run npm migrate seed run test fuzz lint format openapi bench bench-history lock clean

$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m compileall -q api
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# The contract tools tests/test_client.py runs (Redocly CLI, openapi-typescript, openapi-fetch,
# TypeScript), exactly as package-lock.json pins them, into ./node_modules.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	touch $@

npm: node_modules/.installed

# The runtime lock only; the project itself is built with setuptools fetched by pip.
$(RUN_STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(RUN_VENV)
	$(RUN_BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(RUN_BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	$(RUN_BIN)/python -m compileall -q api
	rm -f $(RUN_VENV)/.installed-* && touch $@

install-run: $(RUN_STAMP)

migrate: install-run
	$(RUN_BIN)/cdmo-metrics migrate

seed: migrate
	$(RUN_BIN)/cdmo-metrics seed

# The app's bytecode is compiled first (only what changed): with PYTHONDONTWRITEBYTECODE set, as
# on some machines and in the image, every start would otherwise compile api/ from source again,
# a quarter of a second of start-up (docs/benchmarks.md, "Start-up").
run: seed
	$(RUN_BIN)/python -m compileall -q api
	$(RUN_BIN)/cdmo-metrics serve

lint: install npm
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
		node_modules/.bin/redocly lint openapi.json --config redocly.yaml --format summary

# axe-core, injected into the explorer's pages by the browser tests (tests/browser/).
AXE := tests/browser/node_modules/axe-core/axe.min.js

$(AXE): tests/browser/package-lock.json
	npm ci --prefix tests/browser --ignore-scripts --no-audit --no-fund
	touch $@

# Two worker processes, each taking a whole test file at a time (a file's tests share their
# fixtures), in the order tests/conftest.py collects them (the longest files first; xdist
# would otherwise start with the files of most tests, leaving the fuzzing stage for last);
# TEST_WORKERS=0 runs the suite in one process. The fifteen slowest tests are listed at the end.
TEST_WORKERS ?= 2

test: lint $(AXE)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

# The explorer's screenshots in docs/screenshots/ (the README shows them), taken in headless
# Chromium from a server over a freshly seeded SQLite database.
.PHONY: screenshots
screenshots: install
	$(BIN)/python tests/browser/screenshots.py docs/screenshots

# The Schemathesis stage alone (part of `make test`): a live server with an admin key, every
# operation, SQLite and, with TEST_POSTGRES_URL, PostgreSQL (docs/security.md).
fuzz: install
	$(BIN)/pytest tests/test_fuzz.py

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
	rm -rf $(VENV) $(RUN_VENV) $(BENCH_VENV) node_modules data .pytest_cache .mypy_cache .ruff_cache
