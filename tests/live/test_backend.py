"""The cluster backend on real nodes: set up, index the shipped sample, search, evaluate, reindex, fail well.

Every test runs on each engine whose node has the features it names (``needs``); see ``conftest.py``. Each
module's alias is ``es-biomed-test-<random>`` and only what the test made is deleted, by exact name.

Parity with the embedded engine on real text (the sample): BM25 differs by analyzer (the engines' ``english`` =
standard tokenizer + Porter stemmer; the embedded one = UAX#29 words + Snowball), so top-10 lists are compared
by overlap, not order. Exact score parity is ``test_parity.py``'s job.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from es_biomed.backends.cluster import ClusterBackend
from es_biomed.corpus import iter_documents
from es_biomed.errors import EncoderMismatchError, EncoderSwappedError
from es_biomed.query.presets import default_plan
from tests.conftest import REPO

SAMPLE = REPO / "data" / "scifact-sample"
QUERIES = [
    "Ribosomopathies have a low degree of cell and tissue specific pathology.",
    "Aspirin inhibits the production of PGE2.",
    "BRCA1 mutations increase breast cancer risk.",
    "Vitamin D deficiency is associated with tuberculosis.",
    "Statins reduce cardiovascular mortality.",
]


@pytest.fixture(scope="module")
def indexed(cluster_config, cached, text_analyzer):  # type: ignore[no-untyped-def]
    cfg = dataclasses.replace(cluster_config, alias=f"es-biomed-test-{uuid.uuid4().hex[:8]}")
    be = ClusterBackend.connect(cfg)
    be.setup(cached.info, analyzer=text_analyzer)
    report = be.index_documents(iter_documents(SAMPLE), cached)
    assert report.failed == [] and report.ok == 500
    yield be
    be.drop()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, cached, text_analyzer):  # type: ignore[no-untyped-def]
    """The embedded engine on the same documents and vectors, with the analyzer closest to the engine's:
    the default (english-like) one, or no stemming and no stop words where the node has only ``standard``."""
    from es_biomed.backends.embedded.index import EmbeddedIndex
    from es_biomed.ingest import index_documents
    from es_biomed.query.analysis import AnalyzerConfig

    path = tmp_path_factory.mktemp("emb") / "ix"
    if text_analyzer == "standard":
        EmbeddedIndex.create(path, cached.info, analyzer=AnalyzerConfig(stopwords=False, stemmer=""))
    index_documents(iter_documents(SAMPLE), path, cached)
    return EmbeddedIndex(path)


def test_setup_is_idempotent_and_status_reports(engine, indexed, cached, text_analyzer, caps):
    again = indexed.setup(cached.info, analyzer=text_analyzer)
    assert again["created"] is None and again["indices"] == [f"{indexed.alias}-v1"]
    status = indexed.status()
    assert status["engine"] == engine and status["version"] == caps.version
    assert status["indices"] == {f"{indexed.alias}-v1": 500}
    assert status["encoder"]["fingerprint"] == cached.info.fingerprint and status["encoder"]["mapped_dims"] == 384
    assert status["index_template"] and status["search_template"] == caps.search_templates


def test_reindexing_the_same_documents_does_not_duplicate(engine, indexed, cached):
    docs = list(iter_documents(SAMPLE))[:20]
    report = indexed.index_documents(docs, cached)
    assert report.ok == 20 and report.written_ids == [d.id for d in docs]
    assert indexed.count() == 500


def _overlap(indexed, embedded, cached, mode):  # type: ignore[no-untyped-def]
    overlaps = []
    for q in QUERIES:
        plan = default_plan(q, mode=mode, k=10)
        vec = cached.encode_queries([q])[0]
        es_ids = [h.doc_id for h in indexed.search(plan, vec).hits]
        emb_ids = [h.doc_id for h in embedded.search(plan, vec).hits]
        overlaps.append(len(set(es_ids) & set(emb_ids)))
    return overlaps


def test_bm25_top10_overlap_with_embedded(engine, indexed, embedded, cached, text_analyzer):
    overlaps = _overlap(indexed, embedded, cached, "bm25")
    # english: the stemmers differ (Porter vs Snowball); standard: the same tokens on both sides
    assert sum(overlaps) / len(overlaps) >= (8 if text_analyzer == "english" else 9.5), overlaps


@pytest.mark.needs("scripts")
def test_rerank_top10_overlap_with_embedded(engine, indexed, embedded, cached):
    overlaps = _overlap(indexed, embedded, cached, "rerank")
    assert sum(overlaps) / len(overlaps) >= 8, overlaps


def test_dense_top10_overlap_with_exact_knn(engine, indexed, embedded, cached):
    """Approximate kNN (HNSW, oversampled) against the embedded engine's exact kNN on 500 documents."""
    overlaps = _overlap(indexed, embedded, cached, "dense")
    assert sum(overlaps) / len(overlaps) >= 9.5, overlaps


@pytest.mark.needs("search_templates", "scripts")
def test_search_template_returns_the_builder_hits_and_scores(engine, indexed, cached):
    q = QUERIES[0]
    vec = [float(x) for x in cached.encode_queries([q])[0]]
    via_template = indexed.search_template({"query": q, "query_vector": vec, "k": 10})
    via_builder = indexed.search(default_plan(q, k=10), vec)
    assert [h.doc_id for h in via_template.hits] == [h.doc_id for h in via_builder.hits]
    assert [h.score for h in via_template.hits] == pytest.approx([h.score for h in via_builder.hits], rel=1e-6)


@pytest.mark.needs("search_templates", "scripts")
def test_search_template_without_query_vector_names_it(engine, indexed):
    """Issue 26: once "[script] failed to parse field [params]"; now the engine refuses a key that names it."""
    with pytest.raises(Exception, match="query_vector_is_required"):  # noqa: B017 - the engine's own error type
        indexed.search_template({"query": QUERIES[0], "k": 10})


def test_eval_beir_through_the_engine(engine, indexed, embedded, cached, caps, tmp_path):
    from es_biomed.eval.protocols import evaluate_beir

    result = evaluate_beir(
        SAMPLE, indexed, cached, default_plan(), modes=None if caps.scripts else ("bm25", "dense", "hybrid")
    )
    reference = evaluate_beir(SAMPLE, embedded.path, cached, default_plan())
    for run, metrics in result["runs"].items():
        assert metrics["NDCG@10"] == pytest.approx(reference["runs"][run]["NDCG@10"], abs=0.02), (run, metrics)


def test_bulk_retries_429_with_backoff(engine, indexed, cached):
    mod = indexed.dialect.module()

    def throttled():  # type: ignore[no-untyped-def]
        if engine == "elasticsearch":
            from elastic_transport import ApiResponseMeta, HttpHeaders

            meta = ApiResponseMeta(status=429, http_version="1.1", headers=HttpHeaders(), duration=0.0, node=None)
            return mod.ApiError("429 Too Many Requests", meta=meta, body={})
        return mod.TransportError(429, "es_rejected_execution_exception", {})

    class FailingBulkClient:
        """Delegates to the real client; the first ``fail`` bulk calls answer 429 (es-py's test pattern)."""

        def __init__(self, real, fail=2):  # type: ignore[no-untyped-def]
            self.real, self.fail, self.calls = real, fail, 0

        def options(self, **kwargs):  # type: ignore[no-untyped-def]
            return self

        def bulk(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls <= self.fail:
                raise throttled()
            return self.real.bulk(*args, **kwargs)

        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(self.real, name)

    failing = FailingBulkClient(indexed.client)
    be = ClusterBackend(failing, alias=indexed.alias, dialect=engine)
    docs = list(iter_documents(SAMPLE))[:5]
    report = be.index_documents(docs, cached, initial_backoff=0.1, max_backoff=0.5)
    assert report.ok == 5 and report.failed == [] and failing.calls == 3
    assert indexed.count() == 500


def test_encoder_dims_mismatch_is_refused_before_any_write(engine, make_backend, toy_encoder, text_analyzer):
    from tests.conftest import KeywordEncoder

    be = make_backend()
    be.setup(toy_encoder.info, analyzer=text_analyzer)
    other = KeywordEncoder(["a", "b", "c"])
    with pytest.raises(EncoderMismatchError, match="maps 4-dim vectors but encoder 'toy-keywords' produces 3"):
        be.index_documents(list(iter_documents(SAMPLE))[:3], other)
    with pytest.raises(EncoderMismatchError, match="maps 4-dim vectors"):
        be.setup(other.info, analyzer=text_analyzer)
    assert be.count() == 0


def test_each_encoder_stays_on_its_own_index_across_a_model_change(engine, make_backend, toy_encoder, text_analyzer):
    """Searchers sharing one backend hold different encoders while an alias is swapped to another encoder's index:
    each query vector goes only to its own encoder's documents. Once one searcher has seen the swap, another one
    still holding the old encoder is refused too (it once fell back to the alias, i.e. the new index)."""
    import time

    from es_biomed.backends.cluster.connection import PIN_RECHECK_SECONDS
    from tests.conftest import KeywordEncoder

    old, new = toy_encoder, KeywordEncoder(list(reversed(toy_encoder.vocab)), name="toy-reversed")
    assert old.fingerprint != new.fingerprint and old.dims == new.dims
    be = make_backend()
    be.setup(old.info, analyzer=text_analyzer)
    from es_biomed.corpus.types import Document

    words = ["aspirin fever", "heart stroke", "aspirin heart", "fever stroke", "aspirin stroke stroke"]
    docs = [Document(id=f"d{i}", title=w, abstract=f"{w} study {i}") for i, w in enumerate(words)]
    assert be.index_documents(docs, old).ok == 5
    be.check_encoder(old.info)  # a searcher with the old encoder pins the old index
    v1 = be.current_index()
    result = be.reembed(docs, new)
    assert result["from"] == [v1] and result["written"] == 5 and be.current_index() == result["to"] != v1
    time.sleep(PIN_RECHECK_SECONDS)
    plan = default_plan("aspirin for fever", mode="dense", k=5)
    qvec = old.encode_queries([plan.query])[0]
    for _ in range(2):  # the first sees the swap (and unpins the old encoder); the second must not use the alias
        with pytest.raises(EncoderSwappedError, match="load the new index's encoder"):
            be.search(plan, qvec, encoder_fingerprint=old.fingerprint)
    assert be.search_target(new.fingerprint) == result["to"]  # a searcher with the new encoder: the new index
    hits = be.search(plan, new.encode_queries([plan.query])[0], encoder_fingerprint=new.fingerprint).hits
    assert len(hits) == 5


@pytest.mark.needs("reindex")
def test_reindex_runs_as_a_task_and_swaps_the_alias(engine, make_backend, cached, text_analyzer):
    be = make_backend()
    be.setup(cached.info, analyzer=text_analyzer)
    docs = list(iter_documents(SAMPLE))[:40]
    be.index_documents(docs, cached)
    result = be.reindex(cached.info, delete_old=True, analyzer=text_analyzer, poll_seconds=0.2)
    assert result["to"] == f"{be.alias}-v2" and be.indices() == [f"{be.alias}-v2"] and result["task"]
    assert result["copied"] == 40 and be.count() == 40
    plan = default_plan(QUERIES[1], mode="bm25", k=5)
    assert be.search(plan).hits


def test_wildcard_deletes_are_refused_and_drop_deletes_by_name(engine, make_backend, toy_encoder, text_analyzer):
    """``action.destructive_requires_name`` (true by default): the old tests' ``<alias>-v*`` delete fails."""
    be = make_backend()
    be.setup(toy_encoder.info, analyzer=text_analyzer)
    api_error = be.dialect.api_error()
    setting = {"action.destructive_requires_name": True}
    if engine == "opensearch":  # OpenSearch still defaults to false; clusters that care turn it on
        be.client.cluster.put_settings(body={"transient": setting})
    try:
        with pytest.raises(api_error):
            be.client.indices.delete(index=f"{be.alias}-v*")
        assert be.indices() == [f"{be.alias}-v1"]
        assert be.drop() == [f"{be.alias}-v1"] and be.indices() == []
    finally:
        if engine == "opensearch":
            be.client.cluster.put_settings(body={"transient": {"action.destructive_requires_name": None}})


def test_overlapping_templates_of_two_aliases(engine, cluster_config, toy_encoder, text_analyzer):
    """The old layout (``<alias>-*``, priority 200 for every alias) is refused by the engine for aliases
    ``X`` and ``X-test``; the new one (``<alias>-v*``, priority by alias length) installs both."""
    base = f"es-biomed-test-ov{uuid.uuid4().hex[:6]}"
    a = ClusterBackend.connect(dataclasses.replace(cluster_config, alias=base))
    b = ClusterBackend.connect(dataclasses.replace(cluster_config, alias=f"{base}-test"))
    old = {"index_patterns": [f"{base}-*"], "priority": 200, "template": {"settings": {}}}
    old_b = {"index_patterns": [f"{base}-test-*"], "priority": 200, "template": {"settings": {}}}
    a.client.indices.put_index_template(name=f"{base}-old", body=old)
    try:
        with pytest.raises(a.dialect.api_error(), match="overlap|priority"):
            a.client.indices.put_index_template(name=f"{base}-test-old", body=old_b)
    finally:
        a.client.indices.delete_index_template(name=f"{base}-old")
    try:
        a.setup(toy_encoder.info, analyzer=text_analyzer)
        b.setup(toy_encoder.info, analyzer=text_analyzer)
        assert a.indices() == [f"{base}-v1"] and b.indices() == [f"{base}-test-v1"]
    finally:
        a.drop()
        b.drop()


def test_wrong_engine_is_named(engine, cluster_config):
    from es_biomed.backends.cluster import ClusterConfig
    from es_biomed.errors import ClusterError

    other = "opensearch" if engine == "elasticsearch" else "elasticsearch"
    wrong = ClusterConfig(url=cluster_config.url, engine=other)
    expected = "not OpenSearch" if other == "opensearch" else "not Elasticsearch"
    with pytest.raises(ClusterError, match=expected):
        ClusterBackend.connect(wrong)


def test_engine_not_running_names_the_url_and_the_start_command(engine):
    import socket

    from es_biomed.backends.cluster import ClusterConfig
    from es_biomed.errors import ClusterUnavailableError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ClusterConfig(
        url=f"http://127.0.0.1:{port}", engine=engine, username="u", password="sekrit-pw", request_timeout=2
    )
    with pytest.raises(ClusterUnavailableError) as info:
        ClusterBackend.connect(cfg)
    msg = str(info.value)
    assert f"127.0.0.1:{port}" in msg and f"make {engine}" in msg and "sekrit-pw" not in msg


@pytest.mark.needs("ingest_pipelines", "scripts")
def test_ingest_pipeline_output_fits_the_strict_mapping(engine, make_backend, toy_encoder, text_analyzer, caps):
    """The in-cluster embedding pipeline (issue 9): its ``inference`` processor (Elasticsearch ML, absent on these
    nodes) is replaced by a ``set`` that writes what it writes (the vector, and ``model_id`` at the root); the rest
    of the pipeline runs for real and the resulting document must index into the ``dynamic: strict`` mapping with
    its passage."""
    from es_biomed.backends.es_mappings import ingest_pipeline

    be = make_backend()
    be.setup(toy_encoder.info, analyzer=text_analyzer)
    body = ingest_pipeline("my-model", ce_text=engine == "elasticsearch")  # as setup() installs it
    procs = []
    for p in body["processors"]:
        if "inference" in p:
            procs.append({"set": {"field": "embedding", "value": [1.0, 0.0, 0.0, 0.0]}})
            procs.append({"set": {"field": "model_id", "value": "my-model"}})
        else:
            procs.append(p)
    sim = be.client.ingest.simulate(
        body={
            "pipeline": {"processors": procs},
            "docs": [{"_source": {"id": "p1", "title": "aspirin", "abstract": "fever"}}],
        }
    )
    doc = sim["docs"][0]["doc"]["_source"]
    assert "model_id" not in doc and "es_biomed_text" not in doc
    assert doc["passages"] == [{"text": "aspirin fever", "embedding": [1.0, 0.0, 0.0, 0.0]}]
    assert doc.get("ce_text") == ("aspirin. fever" if engine == "elasticsearch" else None)
    be.client.index(index=be.alias, id="p1", body=doc, refresh=True)
    assert be.count() == 1


def test_a_document_the_engine_rejects_is_reported_and_the_rest_kept(engine, make_backend, toy_encoder, text_analyzer):
    """A real per-document refusal: cosine vector fields refuse a zero vector (the toy encoder gives one to a text
    without its keywords). The report names the document, its status and the engine's reason."""
    from es_biomed.corpus import Document

    be = make_backend()
    be.setup(toy_encoder.info, analyzer=text_analyzer)
    docs = [
        Document(id="ok-1", title="aspirin fever"),
        Document(id="zero", title="nothing known"),
        Document(id="ok-2", title="heart stroke"),
    ]
    report = be.index_documents(docs, toy_encoder)
    assert report.ok == 2 and report.written_ids == ["ok-1", "ok-2"]
    (failed,) = report.failed
    assert failed["id"] == "zero" and failed["status"] == 400 and "zero" in str(failed["error"]).lower()
    assert sorted(be.get(["ok-1", "ok-2", "zero"])) == ["ok-1", "ok-2"]
