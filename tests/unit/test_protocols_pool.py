"""The BEIR protocol on a tiny real index: missing judged documents are counted and named, distractors are pooled
into the corpus, and every run is tested against bm25."""

from __future__ import annotations

import json
import logging

from es_biomed.eval.protocols import evaluate_beir
from es_biomed.eval.report import beir_markdown
from es_biomed.query.plan import SearchPlan


def _beir(tmp_path, qrels):
    d = tmp_path / "set"
    (d / "qrels").mkdir(parents=True)
    docs = [
        {"_id": "a", "title": "aspirin", "text": "aspirin lowers fever"},
        {"_id": "b", "title": "heart", "text": "heart stroke risk"},
        {"_id": "c", "title": "fever", "text": "fever in children"},
    ]
    (d / "corpus.jsonl").write_text("".join(json.dumps(x) + "\n" for x in docs))
    (d / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "aspirin fever"}) + "\n" + json.dumps({"_id": "q2", "text": "stroke"}) + "\n"
    )
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{x}\t1\n" for q, x in qrels))
    return d


def test_missing_judged_documents_are_counted_and_named(tmp_path, toy_encoder, caplog):
    d = _beir(tmp_path, [("q1", "a"), ("q2", "b"), ("q2", "zz-gone"), ("q1", "yy-gone")])
    with caplog.at_level(logging.WARNING, logger="es_biomed.eval.protocols"):
        res = evaluate_beir(d, tmp_path / "ix", toy_encoder, SearchPlan(""), significance=None)
    assert res["config"]["qrels_missing"] == {"pairs": 2, "documents": 2, "examples": ["yy-gone", "zz-gone"]}
    assert (
        "2 judged pairs (2 documents) point at documents absent from the corpus, e.g. yy-gone, zz-gone" in caplog.text
    )
    assert "warning: 2 judged pairs (2 documents, e.g. yy-gone, zz-gone) are absent from the corpus" in beir_markdown(
        res
    )
    # the missing documents cap Recall@100 at 1/2 for both queries
    assert res["runs"]["bm25"]["Recall@100"] == 0.5


def test_distractors_pool_and_tests_against_bm25(tmp_path, toy_encoder):
    d = _beir(tmp_path, [("q1", "a"), ("q2", "b")])
    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "title": "aspirin fever", "abstract": "aspirin fever " * (i + 1)}) + "\n"
            for i in range(5)
        )
    )
    res = evaluate_beir(
        d,
        tmp_path / "ix",
        toy_encoder,
        SearchPlan("", window_size=10),
        distractors=[pool],
        run_output=tmp_path / "runs",
    )
    assert res["config"]["documents"] == 8
    assert res["config"]["distractors"]["added"] == 5
    assert set(res["significance"]) == {"bm25+rerank", "dense", "hybrid"}
    assert res["significance"]["dense"]["NDCG@10"]["n"] == 2
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "bm25+rerank.trec",
        "bm25.trec",
        "dense.trec",
        "hybrid.trec",
    ]


def test_documents_of_the_same_question_in_a_pool_are_not_counted(tmp_path, toy_encoder):
    """A PubMedQA distractor whose question is an evaluated query's text: its document answers that query but is
    unjudged, so it is dropped from the query's run before scoring (as the pool module documents)."""
    d = _beir(tmp_path, [("q1", "c"), ("q2", "b")])
    pq = tmp_path / "ori_pqal.json"
    pq.write_text(json.dumps({"777": {"QUESTION": "Aspirin  FEVER", "CONTEXTS": ["aspirin fever aspirin fever"]}}))
    plain = evaluate_beir(
        d, tmp_path / "ix1", toy_encoder, SearchPlan("", mode="bm25"), modes=["bm25"], significance=None
    )
    pooled = evaluate_beir(
        d,
        tmp_path / "ix2",
        toy_encoder,
        SearchPlan("", mode="bm25"),
        modes=["bm25"],
        distractors=[pq],
        significance=None,
    )
    assert pooled["config"]["distractors"]["same_question_ignored"] == 1
    # with the document of the same question dropped, q1's ranking over the judged corpus is unchanged
    assert pooled["runs"]["bm25"]["MRR@10"] == plain["runs"]["bm25"]["MRR@10"]
