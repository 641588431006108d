"""Live Elasticsearch tests: set up, index the shipped sample, search, evaluate, and compare with the embedded engine.

They run when ``ES_URL`` is set (plus ``ES_API_KEY`` or ``ES_USERNAME``/``ES_PASSWORD``, ``ES_CA_CERTS``), e.g.
against ``docker compose -f docker/compose.yaml up elasticsearch``; elsewhere ``conftest.py`` skips them. Each
test module uses its own alias ``es-biomed-test-<random>`` and deletes its indices and template afterwards.

Parity tolerance with the embedded engine (documented in the README): BM25 differs by analyzer (ES ``english``
= standard tokenizer + Porter stemmer; tantivy = simple tokenizer + Snowball stemmer) and by Lucene's lossy
length norms, so top-10 lists are compared by overlap, not order: at least 7 of 10 in common on average for
BM25 and for BM25 + rerank. Vector scores use the exact float vectors in both engines.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import REPO

elasticsearch = pytest.importorskip("elasticsearch")

from es_biomed.backends.elasticsearch import ElasticsearchBackend, ESConfig, make_client  # noqa: E402
from es_biomed.corpus import iter_documents, load_beir  # noqa: E402
from es_biomed.errors import EncoderMismatchError  # noqa: E402
from es_biomed.query.es_compile import compile_search  # noqa: E402
from es_biomed.query.presets import default_plan  # noqa: E402

pytestmark = pytest.mark.live_es
SAMPLE = REPO / "data" / "scifact-sample"
QUERIES = [
    "Ribosomopathies have a low degree of cell and tissue specific pathology.",
    "Aspirin inhibits the production of PGE2.",
    "BRCA1 mutations increase breast cancer risk.",
    "Vitamin D deficiency is associated with tuberculosis.",
    "Statins reduce cardiovascular mortality.",
]


@pytest.fixture(scope="module")
def client():
    cfg = ESConfig.from_env()
    es = make_client(cfg)
    info = es.info()
    assert int(info["version"]["number"].split(".")[0]) >= 9, "client 9.x needs an Elasticsearch 9 server"
    return es


@pytest.fixture(scope="module")
def backend(client, minilm):
    alias = f"es-biomed-test-{uuid.uuid4().hex[:8]}"
    be = ElasticsearchBackend(client, alias=alias)
    be.setup(minilm.info)
    yield be
    client.indices.delete(index=f"{alias}-v*", ignore_unavailable=True, allow_no_indices=True)
    client.indices.delete_index_template(name=alias, ignore=[404])


@pytest.fixture(scope="module")
def indexed(backend, minilm):
    report = backend.index_documents(iter_documents(SAMPLE), minilm)
    assert report.failed == [] and report.ok == 500
    return backend


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, minilm):
    from es_biomed.backends.embedded import EmbeddedIndex
    from es_biomed.ingest import index_documents

    path = tmp_path_factory.mktemp("emb") / "ix"
    index_documents(iter_documents(SAMPLE), path, minilm)
    return EmbeddedIndex(path)


def test_setup_is_idempotent_and_status_reports(indexed, minilm):
    again = indexed.setup(minilm.info)
    assert again["created"] is None and again["indices"] == [f"{indexed.alias}-v1"]
    status = indexed.status()
    assert status["indices"] == {f"{indexed.alias}-v1": 500}
    assert status["encoder"]["fingerprint"] == minilm.info.fingerprint and status["encoder"]["mapped_dims"] == 384
    assert status["index_template"] and status["search_template"]


def test_reindexing_the_same_documents_does_not_duplicate(indexed, minilm):
    docs = list(iter_documents(SAMPLE))[:20]
    assert indexed.index_documents(docs, minilm).ok == 20
    assert indexed.count() == 500


def test_top10_overlap_with_embedded(indexed, embedded, minilm):
    for mode in ("bm25", "rerank"):
        overlaps = []
        for q in QUERIES:
            plan = default_plan(q, mode=mode, k=10)
            vec = minilm.encode_queries([q])[0]
            es_ids = [h.doc_id for h in indexed.search(plan, vec).hits]
            emb_ids = [h.doc_id for h in embedded.search(plan, vec).hits]
            overlaps.append(len(set(es_ids) & set(emb_ids)))
        assert sum(overlaps) / len(overlaps) >= 7, (mode, overlaps)


def test_search_template_returns_the_builder_results(indexed, minilm, client):
    q = QUERIES[0]
    vec = [float(x) for x in minilm.encode_queries([q])[0]]
    via_template = client.search_template(
        index=indexed.alias, id="es-biomed-rescore", params={"query": q, "query_vector": vec, "k": 10}
    )
    via_builder = client.search(index=indexed.alias, body=compile_search(default_plan(q, k=10), vec))
    assert [h["_id"] for h in via_template["hits"]["hits"]] == [h["_id"] for h in via_builder["hits"]["hits"]]


def test_eval_beir_through_es(indexed, minilm, tmp_path):
    from es_biomed.eval.protocols import evaluate_beir

    result = evaluate_beir(SAMPLE, indexed, minilm, default_plan())
    embedded_pins = json.loads((REPO / "benchmarks" / "expected.json").read_text())
    assert embedded_pins  # the sample's embedded NDCG@10 is pinned in tests/integration
    for run in ("bm25", "bm25+rerank", "dense", "hybrid"):
        assert 0.75 <= result["runs"][run]["NDCG@10"] <= 0.95, (run, result["runs"][run])
    assert load_beir(SAMPLE).queries


def test_bulk_retries_429_with_backoff(backend, minilm, client):
    from elastic_transport import ApiResponseMeta, HttpHeaders

    class FailingBulkClient:
        """Delegates to the real client; the first ``fail`` bulk calls answer 429 (es-py's test pattern)."""

        def __init__(self, real, fail=2):
            self.real, self.fail, self.calls = real, fail, 0

        def options(self, **kwargs):
            return self

        def bulk(self, *args, **kwargs):
            self.calls += 1
            if self.calls <= self.fail:
                meta = ApiResponseMeta(status=429, http_version="1.1", headers=HttpHeaders(), duration=0.0, node=None)
                raise elasticsearch.ApiError("429 Too Many Requests", meta=meta, body={})
            return self.real.bulk(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self.real, name)

    failing = FailingBulkClient(client)
    be = ElasticsearchBackend(failing, alias=backend.alias)
    docs = list(iter_documents(SAMPLE))[:5]
    report = be.index_documents(docs, minilm, initial_backoff=0.1, max_backoff=0.5)
    assert report.ok == 5 and report.failed == [] and failing.calls == 3


def test_encoder_dims_mismatch_is_refused(backend):
    with pytest.raises(EncoderMismatchError, match="maps 384-dim vectors"):
        backend.check_encoder({"name": "biomedbert-large", "dims": 1024, "fingerprint": "x"})


def test_reindex_swaps_the_alias_without_losing_documents(indexed, minilm, client):
    before = indexed.count()
    result = indexed.reindex(minilm.info, delete_old=True)
    assert result["to"] == f"{indexed.alias}-v2" and indexed.indices() == [f"{indexed.alias}-v2"]
    assert indexed.count() == before


def test_credentials_never_appear_in_errors():
    cfg = ESConfig.from_env()
    if not (cfg.password or cfg.api_key):
        pytest.skip("no credentials configured")
    bad = ESConfig(cfg.url, username=cfg.username or "elastic", password="wrong-secret-xyz", ca_certs=cfg.ca_certs)
    with pytest.raises(elasticsearch.ApiError) as info:
        make_client(bad).info()
    assert "wrong-secret-xyz" not in str(info.value) and "wrong-secret-xyz" not in repr(bad)
