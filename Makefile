# Junction: the two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench install clean lint

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

bench: $(STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache bench/results/*.json
