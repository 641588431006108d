"""Score parts reported by the embedded engine (what ``es-biomed serve`` shows per hit): on a 4-document corpus,
each final score is recomputed from its parts with the plan's formula."""

from __future__ import annotations

import pytest

from es_biomed.backends import EmbeddedIndex
from es_biomed.corpus import Document
from es_biomed.query import SearchPlan, reciprocal_rank_fusion

DOCS = [
    Document(id="d1", title="Aspirin", abstract="aspirin aspirin lowers fever", source="pubmed", date="2010-01-01"),
    Document(id="d2", abstract="aspirin and heart attacks in older adults", source="pmc", date="2015"),
    Document(id="d3", abstract="aspirin after stroke", source="pubmed", date="2020"),
    Document(id="d4", abstract="ibuprofen lowers fever in children", source="pmc", date="2021"),
]


@pytest.fixture
def index(tmp_path, toy_encoder):
    idx = EmbeddedIndex.create(tmp_path / "ix", toy_encoder.info)
    with idx.writer() as w:
        w.add(DOCS, toy_encoder)
    return idx


def test_bm25_parts_are_the_score(index):
    res = index.search(SearchPlan("aspirin", mode="bm25"))
    assert [(h.doc_id, res.parts[h.doc_id]) for h in res.hits] == [(h.doc_id, {"bm25": h.score}) for h in res.hits]


def test_rerank_final_is_weighted_bm25_plus_cosine(index, toy_encoder):
    qvec = toy_encoder.encode_queries(["heart fever"])[0]
    plan = SearchPlan("aspirin", window_size=10, rescore_query_weight=5.0)
    res = index.search(plan, qvec)
    bm25 = {h.doc_id: h.score for h in index.bm25(plan, 10)}
    cos = index.vector_scores(qvec, bm25)
    assert set(res.parts) == {"d1", "d2", "d3"}
    for h in res.hits:
        p = res.parts[h.doc_id]
        assert p == pytest.approx({"bm25": bm25[h.doc_id], "cosine": cos[h.doc_id]})
        assert h.score == pytest.approx(p["bm25"] + 5.0 * (p["cosine"] + 1.0))


def test_rerank_hit_below_the_window_has_no_cosine(index, toy_encoder):
    qvec = toy_encoder.encode_queries(["heart fever"])[0]
    res = index.search(SearchPlan("aspirin", window_size=1), qvec)
    assert [sorted(res.parts[h.doc_id]) for h in res.hits] == [["bm25", "cosine"], ["bm25"], ["bm25"]]


def test_dense_parts_are_the_cosine(index, toy_encoder):
    qvec = toy_encoder.encode_queries(["stroke"])[0]
    res = index.search(SearchPlan("x", mode="dense", k=2), qvec)
    assert res.hits[0].doc_id == "d3"
    # d3 "aspirin after stroke" is (aspirin 1, stroke 1) / sqrt 2 on the toy axes, the query is one-hot "stroke"
    assert res.parts["d3"] == pytest.approx({"cosine": 2**-0.5})
    for h in res.hits:
        assert h.score == pytest.approx((1.0 + res.parts[h.doc_id]["cosine"]) / 2.0)


def test_hybrid_parts_carry_rrf_and_both_inputs(index, toy_encoder):
    qvec = toy_encoder.encode_queries(["fever"])[0]
    plan = SearchPlan("aspirin", mode="hybrid", k=4, window_size=4)
    res = index.search(plan, qvec)
    lexical = [h.doc_id for h in index.bm25(plan, 4)]
    dense = [h.doc_id for h in index.knn(qvec, 4)]
    fused = dict(reciprocal_rank_fusion([lexical, dense], 60, 4))
    for h in res.hits:
        p = res.parts[h.doc_id]
        assert h.score == pytest.approx(p["rrf"]) == pytest.approx(fused[h.doc_id])
        assert ("bm25" in p) == (h.doc_id in lexical) and "cosine" in p
    assert "bm25" not in res.parts["d4"]  # d4 has no "aspirin": found by kNN only
