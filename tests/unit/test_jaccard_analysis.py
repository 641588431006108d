"""The Jaccard debiasing analysis on a hand-built set, every number worked out by hand."""

from __future__ import annotations

import json
import re

import pytest

from es_biomed.corpus.types import Document, RetrievalSet
from es_biomed.eval.jaccard import (
    DEFAULT_BUCKETS,
    HISTOGRAM_EDGES,
    bucket_labels,
    jaccard_analysis,
    pair_overlaps,
)

# Token sets are lowercased \w+ runs.
QUERIES = {
    "q1": "Alpha beta gamma delta?",  # {alpha, beta, gamma, delta}: 4 tokens
    "q2": "kinase inhibitor trial",  # {kinase, inhibitor, trial}: 3
    "q3": "What is sepsis",  # {what, is, sepsis}: 3
    "q4": "sepsis shock lactate",  # {sepsis, shock, lactate}: 3
}
CORPUS = {
    # q1-d1: 4 shared / union 5 = 0.8  -> the removed pair (in ignore)
    "d1": Document(id="d1", abstract="alpha beta gamma delta epsilon"),
    # q1-d2: 1 shared / union 4 = 0.25
    "d2": Document(id="d2", abstract="Alpha."),
    # q2-d3: .text is "Kinase zeta eta theta iota kappa lambda" (the title counts): 1 / (3 + 6) = 1/9
    "d3": Document(id="d3", title="Kinase", abstract="zeta eta theta iota kappa lambda"),
    # nothing shared with q2 nor q3: J = 0
    "d4": Document(id="d4", abstract="mu nu xi omicron pi rho sigma tau upsilon phi"),
    # q4-d5: 3 shared / union 10 = 0.3 exactly (kept: the rule removes J > 0.30)
    "d5": Document(id="d5", abstract="sepsis shock lactate a b c d e f g"),
    "d6": Document(id="d6", abstract="unjudged filler"),
}
QRELS = {
    "q1": {"d2": 1},
    "q2": {"d3": 1, "d4": 1},
    "q3": {"d4": 1, "not-in-corpus": 1},  # skipped by pair_overlaps
    "q4": {"d5": 1},
}
IGNORE = {"q1": {"d1"}}

RUNS = {
    "bm25": {
        "q1": {"d1": 9.0, "d6": 8.0, "d2": 7.0},  # d1 dropped (ignore): d6, d2 -> rank 2 -> 1/2
        "q2": {"d4": 5.0, "d3": 4.0},  # rank 1 -> 1
        "q3": {"d6": 3.0, "d1": 2.0, "d2": 1.5, "d4": 1.0},  # rank 4 -> 1/4
        # q4 missing -> 0
    },
    "rerank": {
        "q1": {"d2": 1.0},  # rank 1 -> 1
        "q2": {"d6": 2.0, "d5": 1.0, "d3": 0.5},  # rank 3 -> 1/3
        "q3": {},  # nothing -> 0
        "q4": {"d5": 1.0},  # rank 1 -> 1
    },
}


@pytest.fixture
def ds() -> RetrievalSet:
    return RetrievalSet(corpus=dict(CORPUS), queries=dict(QUERIES), qrels=QRELS, ignore=IGNORE)


def test_pair_overlaps_include_ignored_and_skip_missing(ds):
    pairs = pair_overlaps(ds)
    assert [(q, d) for q, d, _ in pairs] == [
        ("q1", "d1"),
        ("q1", "d2"),
        ("q2", "d3"),
        ("q2", "d4"),
        ("q3", "d4"),
        ("q4", "d5"),
    ]
    assert [j for _, _, j in pairs] == pytest.approx([0.8, 0.25, 1 / 9, 0.0, 0.0, 0.3])


def test_distribution_counts_and_quantiles(ds):
    an = jaccard_analysis(ds)
    assert an["pairs"] == 6
    dist = an["distribution"]
    assert dist["edges"] == list(HISTOGRAM_EDGES)
    assert len(dist["edges"]) == 21 and dist["edges"][0] == 0.0 and dist["edges"][-1] == 1.0
    expected = [0] * 20
    expected[0] = 2  # two J = 0 pairs in [0.00, 0.05)
    expected[2] = 1  # 1/9 = 0.111 in [0.10, 0.15)
    expected[5] = 1  # 0.25 in [0.25, 0.30)
    expected[6] = 1  # 0.30 in [0.30, 0.35)
    expected[16] = 1  # 0.80 in [0.80, 0.85)
    assert dist["counts"] == expected
    # sorted values [0, 0, 1/9, 0.25, 0.3, 0.8], numpy's linear interpolation at position p * 5
    q = dist["quantiles"]
    assert q["min"] == 0.0 and q["max"] == pytest.approx(0.8)
    assert q["p25"] == pytest.approx(0.25 * (1 / 9))  # position 1.25
    assert q["median"] == pytest.approx((1 / 9 + 0.25) / 2)  # position 2.5
    assert q["p75"] == pytest.approx(0.25 + 0.75 * 0.05)  # position 3.75
    assert q["p90"] == pytest.approx(0.3 + 0.5 * 0.5)  # position 4.5


def test_removed_per_threshold(ds):
    removed = jaccard_analysis(ds)["removed"]
    assert list(removed) == ["0.1", "0.2", "0.3", "0.4", "0.5"]
    # > 0.1: 0.8, 0.25, 1/9, 0.3; q1 {0.8, 0.25} and q4 {0.3} keep nothing
    assert removed["0.1"] == {"pairs": 4, "questions": 2}
    # > 0.2: 0.8, 0.25, 0.3; again q1 and q4 keep nothing
    assert removed["0.2"] == {"pairs": 3, "questions": 2}
    # > 0.3: only 0.8 (0.3 itself stays); q1 keeps d2
    assert removed["0.3"] == {"pairs": 1, "questions": 0}
    assert removed["0.4"] == {"pairs": 1, "questions": 0}
    assert removed["0.5"] == {"pairs": 1, "questions": 0}


def test_by_bucket_assignment_and_mrr(ds):
    an = jaccard_analysis(ds, RUNS)
    assert an["metric"] == "MRR@10" and an["runs"] == ["bm25", "rerank"]
    by = an["by_bucket"]
    assert list(by) == bucket_labels(DEFAULT_BUCKETS)
    assert list(by) == [
        "[0.00, 0.05)",
        "[0.05, 0.10)",
        "[0.10, 0.15)",
        "[0.15, 0.20)",
        "[0.20, 0.30)",
        "[0.30, 1.00]",
    ]
    # Max J over kept pairs: q3 -> 0 ; q2 -> 1/9 ; q1 -> 0.25 (d1's 0.8 is ignored) ; q4 -> 0.3 (last bucket)
    assert {k: v["queries"] for k, v in by.items()} == {
        "[0.00, 0.05)": 1,
        "[0.05, 0.10)": 0,
        "[0.10, 0.15)": 1,
        "[0.15, 0.20)": 0,
        "[0.20, 0.30)": 1,
        "[0.30, 1.00]": 1,
    }
    assert by["[0.00, 0.05)"]["bm25"] == pytest.approx(0.25)  # q3
    assert by["[0.00, 0.05)"]["rerank"] == 0.0
    assert by["[0.10, 0.15)"]["bm25"] == pytest.approx(1.0)  # q2
    assert by["[0.10, 0.15)"]["rerank"] == pytest.approx(1 / 3)
    assert by["[0.20, 0.30)"]["bm25"] == pytest.approx(0.5)  # q1, ignore applied
    assert by["[0.20, 0.30)"]["rerank"] == pytest.approx(1.0)
    assert by["[0.30, 1.00]"]["bm25"] == 0.0  # q4 missing from the run
    assert by["[0.30, 1.00]"]["rerank"] == pytest.approx(1.0)
    assert by["[0.05, 0.10)"] == {"queries": 0, "bm25": None, "rerank": None}
    json.dumps(an)  # JSON-serialisable


def test_custom_buckets_and_no_runs(ds):
    an = jaccard_analysis(ds, buckets=(0.0, 0.2, 1.0), thresholds=(0.3,))
    assert an["by_bucket"] == {"[0.00, 0.20)": {"queries": 2}, "[0.20, 1.00]": {"queries": 2}}
    assert list(an["removed"]) == ["0.3"] and an["runs"] == []


def test_empty_set():
    an = jaccard_analysis(RetrievalSet(corpus={}, queries={}, qrels={}))
    assert an["pairs"] == 0 and sum(an["distribution"]["counts"]) == 0
    assert an["distribution"]["quantiles"]["median"] is None
    assert an["removed"]["0.3"] == {"pairs": 0, "questions": 0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"thresholds": (0.3, 1.5)}, "thresholds must lie in [0, 1]; got 1.5"),
        ({"thresholds": (-0.1,)}, "thresholds must lie in [0, 1]; got -0.1"),
        ({"buckets": (0.1, 1.0)}, "buckets must be edges from 0.0 to 1.0; got [0.1, 1.0]"),
        ({"buckets": (0.0, 0.5)}, "buckets must be edges from 0.0 to 1.0; got [0.0, 0.5]"),
        ({"buckets": (0.0, 0.2, 0.2, 1.0)}, "buckets must be strictly increasing; got [0.0, 0.2, 0.2, 1.0]"),
        ({"buckets": (0.0, 0.5, 0.3, 1.0)}, "buckets must be strictly increasing; got [0.0, 0.5, 0.3, 1.0]"),
        ({"metric": "F1"}, "unknown metric 'F1'"),
    ],
)
def test_bad_arguments(ds, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        jaccard_analysis(ds, **kwargs)
