"""Table 9: the three runs' plans, their scoring by hand, the paper layout, and the cosine run on a real index."""

from __future__ import annotations

import json

import numpy as np
import pytest

from es_biomed.corpus.bioasq import load_bioasq
from es_biomed.corpus.types import Document, RetrievalSet
from es_biomed.eval.protocols import evaluate_bioasq
from es_biomed.eval.table9 import PAPER_TABLE9, score_table9, table9_markdown, table9_plans
from es_biomed.eval.trec import read_run
from es_biomed.query.plan import SearchPlan


def test_plans_cosine_is_query_weight_zero():
    plan = SearchPlan("q", rescore_query_weight=75.0, window_size=30)
    plans = table9_plans(plan, [20, 50], depth=60)
    assert list(plans) == ["bm25", "bm25+cosine@20", "bm25+rerank@20", "bm25+cosine@50", "bm25+rerank@50"]
    assert (plans["bm25"].mode, plans["bm25"].k) == ("bm25", 60)
    cos = plans["bm25+cosine@20"]
    assert (cos.mode, cos.window_size, cos.k, cos.query_weight, cos.rescore_query_weight) == (
        "rerank",
        20,
        20,
        0.0,
        1.0,
    )
    tuned = plans["bm25+rerank@50"]
    assert (tuned.window_size, tuned.k, tuned.query_weight, tuned.rescore_query_weight) == (50, 50, 1.0, 75.0)


def _set():
    corpus = {d: Document(id=d, abstract=d) for d in "abcd"}
    return RetrievalSet(
        corpus=corpus,
        queries={"q1": "x", "q2": "y"},
        qrels={"q1": {"a": 1}, "q2": {"b": 1}},
        ignore={"q2": {"c"}},
    )


def test_score_by_hand():
    ds = _set()
    runs = {
        # q1: a at rank 2 -> RR 1/2; q2: c is ignored, so b moves from rank 3 to rank 2 -> 1/2. Mean 0.5.
        "bm25": {"q1": {"d": 3.0, "a": 2.0}, "q2": {"a": 3.0, "c": 2.0, "b": 1.0}},
        # q1: a first -> 1; q2: b at rank 6 (d, a, x1, x2, x3 ahead): MRR@5 0, MRR@10 1/6
        "bm25+cosine@20": {
            "q1": {"a": 2.0, "d": 1.0},
            "q2": {"d": 9.0, "a": 8.0, "x1": 7.0, "x2": 6.0, "x3": 5.0, "b": 4.0},
        },
        "bm25+rerank@20": {"q1": {"a": 2.0}, "q2": {"b": 2.0}},  # both first -> 1.0
    }
    out = score_table9(ds, runs, [20], significance="randomization")
    t = out["table"]
    assert t["bm25"]["20"] == {"MRR@5": 0.5, "MRR@10": 0.5}
    assert t["bm25+cosine"]["20"] == pytest.approx({"MRR@5": 0.5, "MRR@10": (1 + 1 / 6) / 2})
    assert t["bm25+rerank"]["20"] == {"MRR@5": 1.0, "MRR@10": 1.0}
    assert out["gain"]["bm25+rerank"]["20"]["MRR@10"] == pytest.approx(1.0)  # 1.0 / 0.5 - 1
    assert out["gain"]["bm25+cosine"]["20"]["MRR@5"] == pytest.approx(0.0)
    # exact sign-flip test over 2 queries, differences (+1/2, +1/2): 2 of 4 assignments reach |mean| 1/2
    sig = out["significance"]["bm25+rerank"]["20"]["MRR@10"]
    assert (sig["n"], sig["p_value"]) == (2, pytest.approx(0.5))
    assert set(out["per_query"]) == set(runs)


def test_markdown_puts_the_paper_beside_ours():
    ds = _set()
    runs = {name: {"q1": {"a": 1.0}, "q2": {"b": 1.0}} for name in ("bm25", "bm25+cosine@20", "bm25+rerank@20")}
    out = score_table9(ds, runs, [20], significance=None)
    md = table9_markdown(out)
    assert "| top k | paper ES MRR@5 | paper ES+BioMedBERT MRR@5 | bm25 MRR@5 |" in md
    # the paper's row for top 20: 0.172 -> 0.253 is +47.1%; ours are all 1.0, gain +0.0%, no test
    assert "| top 20 | 0.172 | 0.253 (+47.1%) | 1.0000 | 1.0000 | +0.0% | – | 1.0000 | +0.0% | – |" in md
    assert "| top 20 | 0.20 | 0.285 (+42.5%) |" in md  # printed as published
    assert PAPER_TABLE9["50"]["ES+BioMedBERT"]["MRR@10"] == 0.269


def test_cosine_run_is_a_pure_cosine_resort_of_bm25_top_k(tmp_path, toy_encoder):
    # 12 contexts that all share "aspirin"; the question also says "fever" and "stroke"
    words = ["aspirin heart " * (i % 4 + 1) + "fever " * (i % 3) + "stroke " * (i % 2) for i in range(12)]
    paragraphs = [
        {"context": f"{w} context number {i} " + FILLER, "qas": [{"id": f"Q{i}_000", "question": q}]}
        for i, (w, q) in enumerate(zip(words, ["aspirin fever stroke"] + ["heart aspirin"] * 11, strict=True))
    ]
    f = tmp_path / "b.json"
    f.write_text(json.dumps({"data": [{"title": "t", "paragraphs": paragraphs}]}))
    idx = tmp_path / "ix"
    res = evaluate_bioasq([f], idx, toy_encoder, SearchPlan(""), windows=[20], run_output=tmp_path / "runs")
    ds = load_bioasq([f])
    bm25 = read_run(tmp_path / "runs" / "bm25.trec")
    cos = read_run(tmp_path / "runs" / "bm25+cosine@20.trec")
    assert len(bm25) == len(ds.queries) == 12  # the filler keeps every pair under the Jaccard threshold
    for qid, ranked in bm25.items():
        top = list(ranked)[:20]
        # independent re-sort: cosine of the toy vectors over BM25's top 20 (ties keep BM25 order)
        q = toy_encoder.encode_queries([ds.queries[qid]])[0]
        d = toy_encoder.encode_documents([ds.corpus[x].text for x in top])
        cosine = (d @ q) / (np.linalg.norm(d, axis=1) * np.linalg.norm(q))
        want = [top[i] for i in np.argsort(-np.round(cosine, 6), kind="stable")]
        assert list(cos[qid]) == want, qid
        assert list(cos[qid].values()) == pytest.approx(sorted(cosine + 1.0, reverse=True), abs=1e-5)
    assert set(res["table"]) == {"bm25", "bm25+cosine", "bm25+rerank"}
    assert res["config"]["run_files"]["bm25+rerank@20"].endswith("bm25+rerank@20.trec")


FILLER = "patients were enrolled in a randomized trial across several hospital sites during the study period"
