# The two set-up commands of the README: `make demo` and `make test`.
# Both create or reuse .venv/ at the repo root, install what they need (re-installing only when setup.cfg
# changes) and run. Afterwards .venv/bin/es-biomed works.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE := data/scifact-sample
DEMO_INDEX := indexes/scifact-sample
DEMO_QUERY ?= Ribosomopathies have a low degree of cell and tissue specific pathology.

.PHONY: demo docs test test-fp32 cpu-report test-unit test-live test-cov check bench clean opensearch opensearch-stop elasticsearch elasticsearch-stop engines engines-stop opensearch-cluster opensearch-cluster-stop elasticsearch-cluster elasticsearch-cluster-stop

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --no-cache-dir --upgrade pip setuptools wheel

# Stamps: one per extras set, rebuilt when setup.cfg changes. requirements/install.py is `pip install` with the least
# disk at the peak: pip resolves first, then installs the heavy wheels (torch, CUDA libraries, TensorFlow) one at a
# time, without its cache (measured: the peak is 0.4 GB above the 8.2 GB the test set leaves).
INSTALL = $(BIN)/python requirements/install.py $(BIN)/pip

$(VENV)/.stamp-demo: setup.cfg pyproject.toml requirements/install.py | $(BIN)/python
	$(INSTALL) -e '.[torch,onnx,openvino,onnx-export,report]'
	touch $@

$(VENV)/.stamp-test: setup.cfg pyproject.toml requirements/install.py | $(BIN)/python
	$(INSTALL) -e '.[torch,tf,es,opensearch,onnx,openvino,onnx-export,train,workers,serve,report,ann,dev]'
	touch $@ $(VENV)/.stamp-demo

demo: $(VENV)/.stamp-demo
	$(BIN)/es-biomed export onnx all-MiniLM-L6-v2
	$(BIN)/es-biomed index $(SAMPLE) --index $(DEMO_INDEX)
	$(BIN)/es-biomed search "$(DEMO_QUERY)" --index $(DEMO_INDEX) -k 5 --no-rerank
	$(BIN)/es-biomed search "$(DEMO_QUERY)" --index $(DEMO_INDEX) -k 5
	$(BIN)/es-biomed eval beir $(SAMPLE) --index $(DEMO_INDEX) --output runs/demo/scifact-sample.json --no-progress
	$(BIN)/es-biomed ask "Which regulator of the NF-kappaB pathway is overexpressed in glioblastoma stem cells?" --index $(DEMO_INDEX) -k 3
	$(BIN)/es-biomed report benchmarks/reports/sample.yaml --output runs/demo/report --no-progress

# The documentation site (mkdocs.yml, docs/) in strict mode: a broken link between pages, a missing anchor or a page
# left out of the nav fails the build. `make test` builds it first.
docs: $(VENV)/.stamp-test
	$(BIN)/mkdocs build --strict --site-dir build/docs

# The layers contract first (setup.cfg [importlinter]: a future upward import fails the build), then the docs, the suite.
test: docs
	$(BIN)/lint-imports setup.cfg
	$(BIN)/python -m pytest tests

# The precision-sensitive tests again on the fp32 path (ES_BIOMED_BF16=off: what a CPU without AMX / AVX512-BF16
# runs), so an AMX machine proves the fp32 figures too. (The reverse, AMX bf16 on a CPU without AMX, cannot be forced.)
test-fp32: $(VENV)/.stamp-test
	ES_BIOMED_BF16=off $(BIN)/python -m pytest tests -m "precision and not slow"

# What this CPU is and what the default document encoder computes in, with bf16 on and off.
cpu-report: $(VENV)/.stamp-demo
	@$(BIN)/python -c "import json; from es_biomed.encode.cpu import cpu_summary; from es_biomed.eval.repro import document_precision; print(json.dumps({**cpu_summary(), 'document_precision': document_precision()}))"
	@ES_BIOMED_BF16=off $(BIN)/python -c "from es_biomed.eval.repro import document_precision; print('with ES_BIOMED_BF16=off:', document_precision())"

# Live tier only, against the nodes started by `make engines` (or ES_URL / OPENSEARCH_URL of your own clusters).
test-live: $(VENV)/.stamp-test
	$(BIN)/python -m pytest tests/live

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

# Real single-node engines from Maven Central jars (tests/engines/*): started in the background with a PID file
# under .engines/<engine>/, waited on until the cluster is yellow; the URL is printed and kept in .engines/<engine>/url.
# Java: OpenSearch 3 and Elasticsearch 9 need Java 21+ (Temurin 25 where it lies; JAVA_HOME overrides).
opensearch:
	@tests/engines/opensearch/node.sh start

opensearch-stop:
	@tests/engines/opensearch/node.sh stop

elasticsearch:
	@tests/engines/elasticsearch/node.sh start

elasticsearch-stop:
	@tests/engines/elasticsearch/node.sh stop

engines: opensearch elasticsearch

engines-stop: opensearch-stop elasticsearch-stop

# Real multi-node clusters from the same jars (tests/engines/*/cluster.sh): NODES nodes on 127.0.0.1 (default 3,
# 512 MB heap each), each with its own state dir, ports and PID file under .engines/<engine>-cluster/node-I/, waited
# on until green; the URLs are printed comma-separated (OPENSEARCH_URL / ES_URL take that list as it is).
NODES ?= 3

opensearch-cluster:
	@tests/engines/opensearch/cluster.sh start $(NODES)

opensearch-cluster-stop:
	@tests/engines/opensearch/cluster.sh stop

elasticsearch-cluster:
	@tests/engines/elasticsearch/cluster.sh start $(NODES)

elasticsearch-cluster-stop:
	@tests/engines/elasticsearch/cluster.sh stop

# eland's environment for `es-biomed export eland` (docs/eland.md): eland[pytorch] 9.2 with the torch it pins (2.7.1,
# the libtorch of Elasticsearch 9.2), from requirements/eland.txt, in .venv-eland/ apart from .venv/ (whose torch is
# 2.13). Rebuilt when the requirements change. About 5.8 GB (torch from PyPI is the CUDA build; it runs on the CPU).
ELAND_VENV := .venv-eland

.PHONY: eland-env
eland-env: $(ELAND_VENV)/.stamp

$(ELAND_VENV)/.stamp: requirements/eland.txt requirements/install.py
	test -x $(ELAND_VENV)/bin/python || $(PYTHON) -m venv $(ELAND_VENV)
	$(ELAND_VENV)/bin/pip install -q --no-cache-dir --upgrade pip
	$(ELAND_VENV)/bin/python requirements/install.py $(ELAND_VENV)/bin/pip -r requirements/eland.txt
	$(ELAND_VENV)/bin/python -c "import eland, torch; print('eland', eland.__version__, 'torch', torch.__version__)"
	touch $@
