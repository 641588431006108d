# The two set-up commands of the README: `make demo` and `make test`.
# Both create or reuse .venv/ at the repo root, install what they need (re-installing only when setup.cfg
# changes) and run. Afterwards .venv/bin/es-biomed works.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE := data/scifact-sample
DEMO_INDEX := indexes/scifact-sample
DEMO_QUERY ?= Ribosomopathies have a low degree of cell and tissue specific pathology.

.PHONY: demo test test-unit test-cov check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

# Stamps: one per extras set, rebuilt when setup.cfg changes.
$(VENV)/.stamp-demo: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[torch]'
	touch $@

$(VENV)/.stamp-test: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[torch,tf,es,workers,dev]'
	touch $@ $(VENV)/.stamp-demo

demo: $(VENV)/.stamp-demo
	$(BIN)/es-biomed index $(SAMPLE) --index $(DEMO_INDEX)
	$(BIN)/es-biomed search "$(DEMO_QUERY)" --index $(DEMO_INDEX) -k 5 --no-rerank
	$(BIN)/es-biomed search "$(DEMO_QUERY)" --index $(DEMO_INDEX) -k 5
	$(BIN)/es-biomed eval beir $(SAMPLE) --index $(DEMO_INDEX) --output runs/demo/scifact-sample.json --no-progress

test: $(VENV)/.stamp-test
	$(BIN)/python -m pytest tests

test-unit: $(VENV)/.stamp-test
	$(BIN)/python -m pytest tests/unit

test-cov: $(VENV)/.stamp-test
	$(BIN)/pip install -q pytest-cov
	$(BIN)/python -m pytest tests --cov=es_biomed --cov-report=term-missing

check: $(VENV)/.stamp-test
	$(BIN)/ruff check es_biomed tests benchmarks
	$(BIN)/ruff format --check es_biomed tests benchmarks

bench: $(VENV)/.stamp-test
	$(BIN)/python benchmarks/bench_encode.py
	$(BIN)/python benchmarks/bench_search.py

clean:
	rm -rf $(DEMO_INDEX) runs/demo
