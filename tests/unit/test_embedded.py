"""The embedded engine on a 4-document corpus: exact rankings, persistence, idempotent upserts, one writer."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from es_biomed.backends import EmbeddedIndex
from es_biomed.corpus import Document
from es_biomed.errors import EncoderMismatchError, IndexLockedError, IndexNotFoundError
from es_biomed.query import Filters, SearchPlan, apply_rescore

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
        assert w.add(DOCS, toy_encoder) == 4
    return idx


def ids(hits):
    return [h.doc_id for h in hits]


def test_bm25_exact_ranking_and_lucene_formula(index, toy_encoder):
    hits = index.search(SearchPlan("aspirin", mode="bm25", k=10)).hits
    # d1 matches in title and twice in abstract (dis_max takes its best field); d3 is shorter than d2
    # (abstract tokens after analysis: d1 aspirin aspirin lower fever; d2 aspirin heart attack older adult
    # ("and", "in" are stop words); d3 aspirin after stroke; d4 ibuprofen lower fever children); d4 lacks the term.
    assert ids(hits) == ["d1", "d3", "d2"]
    # Lucene BM25 by hand for d3 in `abstract`: N=4, n=3 contain "aspirin", tf=1, dl=3, avgdl=(4+5+3+4)/4=4.
    # idf = ln(1 + 1.5/3.5) = 0.35667; tf part = 2.2 / (1 + 1.2 * (0.25 + 0.75 * 3/4)) = 1.11392 -> 0.39731
    idf = math.log(1 + (4 - 3 + 0.5) / (3 + 0.5))
    tf_part = 1 * (1.2 + 1) / (1 + 1.2 * (1 - 0.75 + 0.75 * 3 / 4))
    assert hits[1].score == pytest.approx(idf * tf_part, rel=1e-5)
    assert [round(h.score, 5) for h in hits] == [0.54056, 0.39731, 0.32358]


def test_rerank_every_score_mode_matches_apply_rescore(index, toy_encoder):
    # query vector: one-hot "heart" (d2 is the only heart document) plus "fever" (d1, d4)
    qvec = toy_encoder.encode_queries(["heart fever"])[0]
    base = SearchPlan("aspirin", window_size=10, query_weight=1.0, rescore_query_weight=5.0)
    first = index.bm25(base, 10)
    cos = index.vector_scores(qvec, ids(first))
    # cosines by hand: d1 (aspirin 3, fever 1) . (fever, heart)/sqrt2 = 1/(sqrt10*sqrt2); d2 (aspirin, heart) -> 1/2; d3 -> 0
    assert cos == pytest.approx({"d1": 1 / math.sqrt(20), "d2": 0.5, "d3": 0.0}, abs=1e-6)
    # BM25 p: d1 0.54056, d3 0.39731, d2 0.32358; r = 5 * (cos + 1): d1 6.11803, d2 7.5, d3 5.0
    expected_order = {
        "total": ["d2", "d1", "d3"],  # 7.82358, 6.65859, 5.39731
        "multiply": ["d1", "d2", "d3"],  # 3.30712, 2.42686, 1.98654
        "avg": ["d2", "d1", "d3"],  # half of total
        "max": ["d2", "d1", "d3"],  # r wins everywhere: 7.5, 6.11803, 5.0
        "min": ["d1", "d3", "d2"],  # p wins everywhere: BM25 order
    }
    for mode, order in expected_order.items():
        plan = base.replace(score_mode=mode)
        got = index.search(plan, qvec).hits
        assert ids(got) == order, mode
        want = apply_rescore([(h.doc_id, h.score) for h in first], {d: c + 1 for d, c in cos.items()}, plan)
        assert [(h.doc_id, pytest.approx(h.score)) for h in got] == want


def test_window_limits_the_rerank(index, toy_encoder):
    qvec = toy_encoder.encode_queries(["heart"])[0]
    plan = SearchPlan("aspirin", window_size=1, rescore_query_weight=100.0, k=3)
    # only d1 is rescored; d3, d2 keep BM25 order below it although d2 is the heart document
    assert ids(index.search(plan, qvec).hits) == ["d1", "d3", "d2"]
    assert ids(index.search(plan.replace(window_size=3), qvec).hits) == ["d2", "d1", "d3"]


def test_dense_and_hybrid(index, toy_encoder):
    qvec = toy_encoder.encode_queries(["fever"])[0]
    dense = index.search(SearchPlan("fever", mode="dense", k=4), qvec).hits
    # cos: d4 (fever only) 1, d1 1/sqrt(10), d2 0, d3 0 -> ties by document order; score (1+cos)/2
    assert ids(dense) == ["d4", "d1", "d2", "d3"]
    assert dense[0].score == pytest.approx(1.0) and dense[1].score == pytest.approx((1 + 1 / math.sqrt(10)) / 2)
    hybrid = index.search(SearchPlan("aspirin", mode="hybrid", k=4, window_size=4), qvec).hits
    # BM25: d1, d3, d2; dense: d4, d1, d2, d3. RRF(60): d1 1/61+1/62, d3 1/62+1/64, d2 1/63+1/63, d4 1/61
    assert ids(hybrid) == ["d1", "d3", "d2", "d4"]
    assert hybrid[0].score == pytest.approx(1 / 61 + 1 / 62)


def test_filters_on_source_and_year(index, toy_encoder):
    plan = SearchPlan("aspirin", mode="bm25", filters=Filters(sources=("pubmed",)))
    assert ids(index.search(plan).hits) == ["d1", "d3"]
    assert ids(index.search(plan.replace(filters=Filters(year_from=2012, year_to=2020))).hits) == ["d3", "d2"]
    qvec = toy_encoder.encode_queries(["fever"])[0]
    assert ids(index.search(SearchPlan("x", mode="dense", filters=Filters(sources=("pmc",))), qvec).hits) == [
        "d4",
        "d2",
    ]


def test_persists_and_reopens(index, toy_encoder):
    again = EmbeddedIndex(index.path)
    assert again.count() == 4
    assert again.get(["d3"])["d3"] == {
        "id": "d3",
        "abstract": "aspirin after stroke",
        "source": "pubmed",
        "date": "2020",
    }
    assert ids(again.search(SearchPlan("aspirin", mode="bm25")).hits) == ["d1", "d3", "d2"]


def test_upsert_is_idempotent_and_replaces_changed_docs(index, toy_encoder):
    with index.writer() as w:
        assert w.add(DOCS, toy_encoder) == 0  # unchanged: nothing re-embedded or rewritten
        assert w.unchanged == 4
    with index.writer() as w:
        assert w.add([Document(id="d4", abstract="aspirin for fever in children")], toy_encoder) == 1
    assert index.count() == 4
    assert ids(index.search(SearchPlan("aspirin", mode="bm25")).hits) == ["d1", "d3", "d4", "d2"]
    qvec = toy_encoder.encode_queries(["fever"])[0]
    # the old d4 vector rows are dead; only the new version scores
    assert index.vector_scores(qvec, ["d4"])["d4"] == pytest.approx(1 / math.sqrt(2))
    assert ids(index.knn(qvec, 4)) == ["d4", "d1", "d2", "d3"]


def test_second_writer_gets_a_clear_error(index):
    with index.writer():
        with pytest.raises(IndexLockedError, match="is locked by another writer"):
            index.writer()
    with index.writer():  # released on exit
        pass


def test_writer_commits_what_was_accepted_when_an_error_escapes(index, toy_encoder):
    with pytest.raises(RuntimeError, match="boom"):
        with index.writer() as w:
            w.add([Document(id="d5", abstract="aspirin stroke heart")], toy_encoder)
            raise RuntimeError("boom")
    assert "d5" in index and index.count() == 5


def test_encoder_mismatch_is_refused(index, toy_encoder):
    from tests.conftest import KeywordEncoder

    other = KeywordEncoder(["aspirin", "fever", "heart", "cancer"], name="other")
    with pytest.raises(EncoderMismatchError, match=re.escape("was built with encoder 'toy-keywords'")):
        index.check_encoder(other.info)
    with pytest.raises(EncoderMismatchError):
        EmbeddedIndex.create(index.path, other.info)
    with index.writer() as w, pytest.raises(EncoderMismatchError):
        w.add([Document(id="x", abstract="aspirin")], other)
    with pytest.raises(EncoderMismatchError, match="query vector has 3 dims"):
        index.search(SearchPlan("aspirin"), np.ones(3, dtype=np.float32))


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexNotFoundError, match="no es-biomed index at"):
        EmbeddedIndex(tmp_path / "nope")


def test_query_of_only_stop_words_returns_nothing(index):
    assert index.search(SearchPlan("the and of", mode="bm25")).hits == []


def test_delete_removes_from_bm25_vectors_and_store(index, toy_encoder):
    with index.writer() as w:
        w.delete(["d1"])
    assert index.count() == 3 and "d1" not in index and index.get(["d1"]) == {}
    assert ids(index.search(SearchPlan("aspirin", mode="bm25")).hits) == ["d3", "d2"]
    qvec = toy_encoder.encode_queries(["fever"])[0]
    assert ids(index.knn(qvec, 4)) == ["d4", "d2", "d3"]


def test_searcher_batch_search_returns_a_run(index, toy_encoder):
    from es_biomed.search.searcher import Searcher

    s = Searcher(index, toy_encoder)
    run = s.batch_search(["aspirin", "fever"], ["q1", "q2"], k=2, mode="bm25")
    assert list(run) == ["q1", "q2"] and list(run["q1"]) == ["d1", "d3"] and list(run["q2"]) == ["d1", "d4"]
    # BM25 scores are below 1; r = 5 * (cos + 1) decides: d4 cos 1/sqrt2 -> 8.54, d2 0.5 -> 7.5, d1 1/sqrt20 -> 6.12
    hits = s.search("heart fever", k=3, window_size=10, rescore_query_weight=5.0).hits
    assert ids(hits) == ["d4", "d2", "d1"]
    with pytest.raises(ValueError, match="2 queries but 1 qids"):
        s.batch_search(["a", "b"], ["q1"])


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        # Elasticsearch `english` gives the same tokens (checked against Lucene 8.7's EnglishAnalyzer):
        # possessive dropped, stop words removed, decimals and acronyms kept whole, Porter-family stems.
        (
            "The patient's p53 levels rose 3.5-fold in U.S.A. trials",
            ["patient", "p53", "level", "rose", "3.5", "fold", "u.s.a", "trial"],
        ),
        ("COVID-19 and α-synuclein: 1,000 cases", ["covid", "19", "α", "synuclein", "1,000", "case"]),
        ("don't stop", ["don't", "stop"]),
    ],
)
def test_default_analyzer_matches_es_english(tmp_path, toy_encoder, text, tokens):
    idx = EmbeddedIndex.create(tmp_path / "ix", toy_encoder.info)
    assert idx.analyze(text) == tokens


def test_indexes_written_before_the_tokenizer_setting_reopen_with_the_simple_analyzer(tmp_path, toy_encoder):
    import json

    idx = EmbeddedIndex.create(tmp_path / "ix", toy_encoder.info)
    meta = idx.path / "es_biomed.json"
    cfg = json.loads(meta.read_text())
    cfg["analyzer"] = {"stopwords": True, "stemmer": "english", "remove_long": 40}  # the old layout
    meta.write_text(json.dumps(cfg))
    assert EmbeddedIndex(idx.path).analyze("patient's 3.5") == ["patient", "s", "3", "5"]
