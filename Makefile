# Junction: the two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-kafka kafka bench bench-config install clean lint

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# A local sandbox: its demo upstreams are on loopback, so private targets are allowed
# (set JUNCTION_ALLOW_PRIVATE_TARGETS=0 to try the SSRF guard).
run: $(STAMP)
	JUNCTION_ALLOW_PRIVATE_TARGETS=$${JUNCTION_ALLOW_PRIVATE_TARGETS:-1} $(VENV)/bin/junction up --demo

test: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# The pipeline, control-plane and reliability tests again, on Apache Kafka of the run's own
# (fetched with Maven into .junction/kafka/, started on free ports, thrown away after).
KAFKA_TESTS ?= tests/pipeline tests/control tests/e2e tests/kafka
test-kafka: $(STAMP)
	JUNCTION_TEST_BROKER=kafka $(PY) -m pytest -p no:cacheprovider $(KAFKA_TESTS) $(PYTEST_ARGS)

# Apache Kafka in the foreground on 127.0.0.1:19092 (fetched with Maven on first use); Ctrl-C stops it.
kafka: $(STAMP)
	$(PY) -m junction.kafka_local run

bench: $(STAMP)
	$(PY) -m bench.run --broker $${BROKER:-embedded} $(BENCH_ARGS)

# The configuration snapshot at scale (10,000 APIs in one organisation; 100 of 1,000 each):
# cold start, one change applied, route resolution. Writes bench/results/config.json.
bench-config: $(STAMP)
	$(PY) -m bench.config_bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache bench/results/*.json
