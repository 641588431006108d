"""Metric arithmetic worked out by hand (pytrec_eval underneath)."""

from __future__ import annotations

import math

import pytest

from es_biomed.eval import evaluate, per_query

QRELS = {"q1": {"a": 1, "c": 1}, "q2": {"x": 2, "y": 1}, "q3": {"z": 1}}
RUN = {
    "q1": {"b": 0.9, "a": 0.8, "c": 0.1},  # relevant at ranks 2 and 3
    "q2": {"y": 5.0, "x": 4.0},  # grade 1 at rank 1, grade 2 at rank 2
    # q3 has no run at all: it must count as 0, not be skipped
}


def test_mrr_by_hand():
    # q1: first relevant at rank 2 -> 1/2; q2: rank 1 -> 1; q3: 0.  Mean over 3 judged queries = 0.5
    assert evaluate(QRELS, RUN, ["MRR@10"])["MRR@10"] == pytest.approx(0.5)
    # cut at 1: q1 has nothing relevant in its top 1 -> 0; q2 -> 1; q3 -> 0; mean 1/3
    assert evaluate(QRELS, RUN, ["MRR@1"])["MRR@1"] == pytest.approx(1 / 3)


def test_ndcg_by_hand():
    # q1: DCG = 1/log2(3) + 1/log2(4); IDCG = 1 + 1/log2(3)
    q1 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    # q2 (trec_eval uses gain = grade): DCG = 1 + 2/log2(3); IDCG = 2 + 1/log2(3)
    q2 = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    pq = per_query(QRELS, RUN, ["NDCG@10"])
    assert pq["q1"]["NDCG@10"] == pytest.approx(q1)
    assert pq["q2"]["NDCG@10"] == pytest.approx(q2)
    assert pq["q3"]["NDCG@10"] == 0.0
    assert evaluate(QRELS, RUN, ["NDCG@10"])["NDCG@10"] == pytest.approx((q1 + q2) / 3)


def test_recall_by_hand():
    # Recall@2: q1 finds a (1 of 2) -> 0.5; q2 both -> 1; q3 0 -> mean 0.5
    assert evaluate(QRELS, RUN, ["Recall@2"])["Recall@2"] == pytest.approx(0.5)


def test_ties_keep_run_order_not_doc_id_order():
    # trec_eval alone would break the tie by doc id; our engines' order is what counts.
    qrels = {"q": {"a": 1}}
    assert evaluate(qrels, {"q": {"b": 1.0, "a": 1.0}}, ["MRR@10"])["MRR@10"] == 0.5
    assert evaluate(qrels, {"q": {"a": 1.0, "b": 1.0}}, ["MRR@10"])["MRR@10"] == 1.0


def test_ignore_drops_documents_before_scoring():
    qrels = {"q": {"a": 1}}
    run = {"q": {"dup": 2.0, "a": 1.0}}
    assert evaluate(qrels, run, ["MRR@10"], ignore={"q": {"dup"}})["MRR@10"] == 1.0


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="unknown metric 'nDCG10'"):
        evaluate(QRELS, RUN, ["nDCG10"])
