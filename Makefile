# Junction: the two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-docs test-kafka kafka bench bench-stages bench-skeleton bench-config install clean lint console console-types test-console test-console-all

# Checked first: pip's own refusal comes after the venv is made, and the old venv then stays in the way.
NEEDS_PYTHON := import sys; sys.exit(sys.version_info < (3, 11))
$(STAMP): pyproject.toml
	@if [ -x $(PY) ]; then $(PY) -c '$(NEEDS_PYTHON)' || { echo "$(VENV) was made with $$($(PY) --version 2>&1); Junction needs Python 3.11 or newer: rm -rf $(VENV), then run make again (PYTHON=python3.12 to name another)" >&2; exit 1; }; \
	else $(PYTHON) -c '$(NEEDS_PYTHON)' 2>/dev/null || { echo "Junction needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version 2>/dev/null || echo 'not found'). Name another: make run PYTHON=python3.12" >&2; exit 1; }; fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# A local sandbox: its demo upstreams are on loopback, so private targets are allowed
# (set JUNCTION_ALLOW_PRIVATE_TARGETS=0 to try the SSRF guard).
run: $(STAMP) console
	JUNCTION_ALLOW_PRIVATE_TARGETS=$${JUNCTION_ALLOW_PRIVATE_TARGETS:-1} $(VENV)/bin/junction up --demo

# With Node.js and npm the console is built first, so tests/console runs its browser and Vitest tests too;
# -rs lists every skipped test with its reason (no node, no chromium...) in the summary.
# Every test but the docs run, which .ci/run runs after it (make test-docs): that one starts its own
# `junction up --demo` on the default ports and runs every command of the README and docs/ in order.
DOCS_RUN := tests/docs/test_docs_run.py::test_every_block_of_the_docs_runs_as_written
# Two workers (pytest-xdist), each a run of its own (its broker, database schema, Redis prefix), each taking
# whole modules; TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: $(STAMP) console
	$(PY) -m pytest -p no:cacheprovider -rs --durations=15 -n $(TEST_WORKERS) --dist loadfile --deselect $(DOCS_RUN) $(PYTEST_ARGS)

# The README and every guide in docs/, run as written, in order, against a `junction up --demo` of its own
# (tests/docs/test_docs_run.py); needs the default ports (8080, 8081...) free: stop `make run` first.
test-docs: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider -rs $(DOCS_RUN) $(PYTEST_ARGS)

# The web console (ui/, docs/console.md), built into ui/dist when missing or older than its sources.
# Needs Node.js 20.19+ and npm; without them `make run` still starts and / says how to build it.
UI_SOURCES := $(shell find ui/src ui/index.html ui/vite.config.ts ui/tsconfig.json sdk/typescript/src -type f 2>/dev/null)
console:
	@if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory ui/dist/index.html sdk/typescript/node_modules/.package-lock.json \
	    || echo "The web console did not build (see above); the API runs without it."; \
	else echo "Node.js and npm are not installed: the web console is not built (docs/console.md)."; fi
ui/node_modules/.package-lock.json: ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund
# The SDK's own tools (vitest, openapi-typescript): tests/console runs its tests against a live control service.
sdk/typescript/node_modules/.package-lock.json: sdk/typescript/package-lock.json
	cd sdk/typescript && npm ci --no-audit --no-fund
ui/dist/index.html: ui/node_modules/.package-lock.json ui/package.json $(UI_SOURCES)
	cd ui && npm run build

# The OpenAPI snapshot (sdk/typescript/openapi.json) and the TypeScript types made from it.
console-types: $(STAMP)
	$(PY) sdk/typescript/scripts/write_openapi.py
	cd sdk/typescript && npm ci --no-audit --no-fund && npm run generate

# The TypeScript SDK's own checks (types, generated code up to date). The console's Vitest and browser tests
# run in `make test` (tests/console) whenever Node.js is there; run them alone with `make test-console-all`.
test-console: $(STAMP)
	cd sdk/typescript && npm ci --no-audit --no-fund && npm run typecheck && npm run check-generated

test-console-all: test-console console
	$(PY) -m pytest -p no:cacheprovider -rs tests/console $(PYTEST_ARGS)

# The pipeline, control-plane and reliability tests again, on Apache Kafka of the run's own
# (fetched with Maven into .junction/kafka/, started on free ports, thrown away after).
KAFKA_TESTS ?= tests/pipeline tests/control tests/e2e tests/kafka
test-kafka: $(STAMP)
	JUNCTION_TEST_BROKER=kafka $(PY) -m pytest -p no:cacheprovider --durations=15 $(KAFKA_TESTS) $(PYTEST_ARGS)

# Apache Kafka in the foreground on 127.0.0.1:19092 (fetched with Maven on first use); Ctrl-C stops it.
kafka: $(STAMP)
	$(PY) -m junction.kafka_local run

bench: $(STAMP)
	$(PY) -m bench.run --broker $${BROKER:-embedded} $(BENCH_ARGS)

# The three stages alone, phase after phase (BENCH_ARGS="--phases r300,c64,c64"): their CPU per call,
# to compare two builds with less spread than `make bench`. Writes bench/results/stages-<broker>.json.
bench-stages: $(STAMP)
	$(PY) -m bench.stages --broker $${BROKER:-embedded} $(BENCH_ARGS)

# The skeleton pipeline: an aiohttp edge, a bare relay and an aiohttp worker joined by Kafka, with no
# Junction code, beside the baseline, per phase: the floor under the stages' CPU per call.
bench-skeleton: $(STAMP)
	$(PY) -m bench.skeleton --broker $${BROKER:-embedded} $(BENCH_ARGS)

# The configuration snapshot at scale (10,000 APIs in one organisation; 100 of 1,000 each):
# cold start, one change applied, route resolution. Writes bench/results/config.json.
bench-config: $(STAMP)
	$(PY) -m bench.config_bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache bench/results/*.json
