"""Exact parity of the embedded engine with the real engines on a fixture whose tokens are identical in both.

The fixture uses the ``standard`` analyzer on the engines (built into both servers) and the embedded engine's
``AnalyzerConfig(stopwords=False, stemmer="")`` (UAX#29 words, lowercase): on text without possessives they emit
the same tokens, every document has all three text fields, and documents are short enough that Lucene's
one-byte length norms are exact. Then BM25 (``most_fields`` with a title boost, and ``best_fields``) and every
rescored score must agree within 1e-4 relative, for all five ``score_mode``s and for windows smaller than the hit
count. This is the proof that the embedded engine implements the engines' ``rescore`` arithmetic.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.corpus import Document
from es_biomed.query import SearchPlan
from es_biomed.query.analysis import AnalyzerConfig
from es_biomed.query.plan import SCORE_MODES
from tests.conftest import KeywordEncoder

VOCAB = ["aspirin", "fever", "heart", "stroke", "statin"]
DOCS = [
    Document(id="d01", title="aspirin and fever", abstract="aspirin lowers fever in adults", body="fever is common"),
    Document(id="d02", title="heart stroke", abstract="aspirin after a stroke of the heart", body="heart care"),
    Document(id="d03", title="statin heart", abstract="statin therapy for heart disease", body="statin dose"),
    Document(id="d04", title="fever in children", abstract="fever without aspirin", body="children fever care"),
    Document(id="d05", title="aspirin", abstract="aspirin aspirin aspirin dose trial", body="trial of aspirin"),
    Document(id="d06", title="stroke risk", abstract="stroke risk and statin use", body="risk model"),
    Document(id="d07", title="heart failure", abstract="heart failure care with aspirin", body="care pathway"),
    Document(id="d08", title="fever and heart", abstract="fever heart rate link", body="rate of fever"),
    Document(id="d09", title="statin", abstract="statin and aspirin together", body="together trial"),
    Document(id="d10", title="stroke and fever", abstract="fever after stroke", body="stroke unit"),
    Document(id="d11", title="aspirin stroke prevention", abstract="low dose aspirin prevents stroke", body="dose"),
    Document(id="d12", title="heart", abstract="heart", body="heart heart heart"),
]
QUERIES = ["aspirin fever", "heart stroke aspirin", "statin dose trial", "fever"]
REL = 1e-4


class HashedKeywordEncoder(KeywordEncoder):
    """Keyword counts plus small text-hash components, so that no two texts share a vector (no kNN ties, whose
    order is engine-specific)."""

    def __init__(self) -> None:
        super().__init__(VOCAB, name="toy-parity")
        self.dims = len(VOCAB) + 4

    @property
    def fingerprint(self) -> str:
        return "toy-parity-hashed-1"

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        counts = np.zeros((len(texts), len(VOCAB)), dtype=np.float32)
        words = [re.findall(r"\w+", t.lower()) for t in texts]
        for i, ws in enumerate(words):
            for j, v in enumerate(VOCAB):
                counts[i, j] = ws.count(v)
        noise = np.array(
            [[b / 2550.0 for b in hashlib.sha256(t.encode()).digest()[:4]] for t in texts], dtype=np.float32
        )
        return np.hstack([counts, noise + 0.01])


@pytest.fixture(scope="module")
def encoder() -> KeywordEncoder:
    return HashedKeywordEncoder()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, encoder: KeywordEncoder) -> EmbeddedIndex:
    path = tmp_path_factory.mktemp("parity") / "ix"
    idx = EmbeddedIndex.create(path, encoder.info, analyzer=AnalyzerConfig(stopwords=False, stemmer=""))
    with idx.writer() as w:
        w.add(DOCS, encoder)
    return EmbeddedIndex(path)


@pytest.fixture(scope="module")
def cluster(cluster_config, encoder):  # type: ignore[no-untyped-def]
    import dataclasses
    import uuid

    from es_biomed.backends.cluster import ClusterBackend

    cfg = dataclasses.replace(cluster_config, alias=f"es-biomed-test-parity-{uuid.uuid4().hex[:6]}")
    be = ClusterBackend.connect(cfg)
    be.setup(encoder.info, analyzer="standard")
    report = be.index_documents(DOCS, encoder)
    assert report.ok == len(DOCS) and not report.failed
    yield be
    be.drop()


def _pairs(hits):  # type: ignore[no-untyped-def]
    return [(h.doc_id, h.score) for h in hits]


def assert_same(engine_hits, embedded_hits) -> None:  # type: ignore[no-untyped-def]
    got, want = _pairs(engine_hits), _pairs(embedded_hits)
    assert [d for d, _ in got] == [d for d, _ in want], (got, want)
    for (d, s), (_, t) in zip(got, want, strict=True):
        assert s == pytest.approx(t, rel=REL), (d, s, t)


@pytest.mark.parametrize("match_type", ["most_fields", "best_fields"])
@pytest.mark.parametrize("query", QUERIES)
def test_bm25_scores_equal_the_embedded_engine(engine, cluster, embedded, query, match_type):
    plan = SearchPlan(
        query, mode="bm25", k=12, match_type=match_type, fields=(("title", 0.5), ("abstract", 1.0), ("body", 1.0))
    )
    engine_hits = cluster.search(plan).hits
    assert len(engine_hits) >= 3
    assert_same(engine_hits, embedded.search(plan).hits)


@pytest.mark.needs("scripts")
@pytest.mark.parametrize("window", [2, 4, 50])
@pytest.mark.parametrize("score_mode", SCORE_MODES)
@pytest.mark.parametrize("query", QUERIES[:3])
def test_rescored_scores_equal_the_embedded_engine(engine, cluster, embedded, encoder, query, score_mode, window):
    plan = SearchPlan(
        query,
        mode="rerank",
        k=12,
        window_size=window,
        score_mode=score_mode,
        query_weight=0.7,
        rescore_query_weight=2.5,
    )
    vec = encoder.encode_queries([query])[0]
    engine_hits = cluster.search(plan, vec).hits
    assert_same(engine_hits, embedded.search(plan, vec).hits)


@pytest.mark.needs("scripts")
@pytest.mark.parametrize("query", QUERIES[:3])
def test_table9_plans_equal_the_embedded_engine(engine, cluster, embedded, encoder, query):
    """Table 9's three runs (bm25; bm25+cosine, the paper's pure cosine re-sort: query_weight 0; the tuned
    weights) return the same hits and scores on the engine as on the embedded engine."""
    from es_biomed.eval.table9 import table9_plans

    vec = encoder.encode_queries([query])[0]
    base = SearchPlan(query, rescore_query_weight=75.0)
    # windows >= 10 return only rescored hits (k = window); below a window every query_weight-0 hit scores 0, and
    # the engines break those ties in their own doc order
    for plan in table9_plans(base, [10, 12], depth=12).values():
        engine_hits = cluster.search(plan, vec).hits
        assert_same(engine_hits, embedded.search(plan, vec).hits)


def test_windows_are_smaller_than_the_hit_counts(engine, cluster):
    for q in QUERIES[:3]:
        assert len(cluster.search(SearchPlan(q, mode="bm25", k=12)).hits) > 4, q


@pytest.mark.needs("scripts")
def test_document_vector_rescore_equals_best_passage_on_single_passage_docs(engine, cluster, embedded, encoder):
    """passages=False scores the document vector (passage 0); with a best passage of its own the order may differ."""
    plan = SearchPlan("heart stroke aspirin", k=12, window_size=12, rescore_query_weight=3.0)
    vec = encoder.encode_queries([plan.query])[0]
    cluster.passages = False
    try:
        doc_vec = cluster.search(plan, vec).hits
    finally:
        cluster.passages = True
    best = cluster.search(plan, vec).hits
    # every best-passage score is at least its document-vector score (max over passages includes passage 0)
    doc_scores = dict(_pairs(doc_vec))
    for d, s in _pairs(best):
        assert s >= doc_scores[d] - 1e-6


@pytest.mark.parametrize("mode", ["hybrid", "hybrid_rerank"])
def test_hybrid_equals_the_embedded_engine(engine, cluster, embedded, encoder, mode):
    """RRF of BM25 and kNN (the rrf retriever where licensed, else client-side), then the rescore: same ranking."""
    plan = SearchPlan("aspirin fever", mode=mode, k=8, window_size=12, rescore_query_weight=2.0)
    vec = encoder.encode_queries([plan.query])[0]
    got = cluster.search(plan, vec).hits
    want = embedded.search(plan, vec).hits
    assert [h.doc_id for h in got] == [h.doc_id for h in want]
    for a, b in zip(got, want, strict=True):
        assert a.score == pytest.approx(b.score, rel=REL)


def test_dense_top_hits_equal_exact_knn(engine, cluster, embedded, encoder):
    """On 12 documents HNSW with oversampling finds the exact neighbours; scores are (1 + cos) / 2 in all three."""
    for q in QUERIES:
        vec = encoder.encode_queries([q])[0]
        plan = SearchPlan(q, mode="dense", k=5)
        got, want = cluster.search(plan, vec).hits, embedded.search(plan, vec).hits
        assert [round(h.score, 4) for h in got] == [round(h.score, 4) for h in want], q
        assert {h.doc_id for h in got if h.score > got[-1].score} <= {h.doc_id for h in want}
