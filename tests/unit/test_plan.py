"""Rescore arithmetic and RRF, worked out by hand."""

from __future__ import annotations

import re

import pytest

from es_biomed.errors import PlanError
from es_biomed.query import Filters, SearchPlan, apply_rescore, combine_scores, reciprocal_rank_fusion
from es_biomed.query.plan import MAX_YEAR, MIN_YEAR

# Four BM25 hits, best first, and the rescore query's score (cosine + 1.0) per doc.
FIRST = [("d1", 4.0), ("d2", 3.0), ("d3", 2.0), ("d4", 1.0)]
RESCORE = {"d1": 1.0, "d2": 1.5, "d3": 2.0, "d4": 1.9}


@pytest.mark.parametrize(
    ("score_mode", "expected"),
    [
        # total: p + r with p = 1.0 * bm25, r = 2.0 * (cos + 1)
        #   d1 4+2=6, d2 3+3=6, d3 2+4=6, d4 1+3.8=4.8 -> three-way tie keeps BM25 order
        ("total", [("d1", 6.0), ("d2", 6.0), ("d3", 6.0), ("d4", 4.8)]),
        # multiply: d1 4*2=8, d2 3*3=9, d3 2*4=8, d4 1*3.8=3.8 -> d2, then d1/d3 tie in BM25 order
        ("multiply", [("d2", 9.0), ("d1", 8.0), ("d3", 8.0), ("d4", 3.8)]),
        # avg: (p + r) / 2 -> 3, 3, 3, 2.4
        ("avg", [("d1", 3.0), ("d2", 3.0), ("d3", 3.0), ("d4", 2.4)]),
        # max: d1 max(4,2)=4, d2 max(3,3)=3, d3 max(2,4)=4, d4 max(1,3.8)=3.8 -> d1, d3, d4, d2
        ("max", [("d1", 4.0), ("d3", 4.0), ("d4", 3.8), ("d2", 3.0)]),
        # min: d1 2, d2 3, d3 2, d4 1 -> d2, d1, d3, d4
        ("min", [("d2", 3.0), ("d1", 2.0), ("d3", 2.0), ("d4", 1.0)]),
    ],
)
def test_every_score_mode_exact_ranking(score_mode, expected):
    plan = SearchPlan("q", window_size=4, query_weight=1.0, rescore_query_weight=2.0, score_mode=score_mode)
    got = apply_rescore(FIRST, RESCORE, plan)
    assert [d for d, _ in got] == [d for d, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected])


def test_documents_below_window_keep_bm25_order_scored_by_query_weight():
    # window 2: d1 0.5*4 + 10*1.0 = 12, d2 0.5*3 + 10*1.5 = 16.5; d3, d4 follow as 0.5*bm25 even though their
    # cosine is higher: only the window is rescored.
    plan = SearchPlan("q", window_size=2, query_weight=0.5, rescore_query_weight=10.0)
    assert apply_rescore(FIRST, RESCORE, plan) == [("d2", 16.5), ("d1", 12.0), ("d3", 1.0), ("d4", 0.5)]


def test_rescored_hits_can_fall_below_the_window_as_in_elasticsearch():
    # multiply with a small weight shrinks window scores: d1 4 * 0.1 * 1.0 = 0.4, d2 3 * 0.1 * 1.5 = 0.45.
    # d3 (2.0) and d4 (1.0) are not rescored; ES re-sorts everything by score, so they come first, and keep
    # their BM25 order among themselves.
    plan = SearchPlan("q", window_size=2, rescore_query_weight=0.1, score_mode="multiply")
    got = apply_rescore(FIRST, RESCORE, plan)
    assert [d for d, _ in got] == ["d3", "d4", "d2", "d1"]
    assert [s for _, s in got] == pytest.approx([2.0, 1.0, 0.45, 0.4])


def test_window_hit_without_vector_scores_weighted_primary():
    plan = SearchPlan("q", window_size=4, query_weight=1.0, rescore_query_weight=1.0)
    got = apply_rescore(FIRST, {"d2": 2.0}, plan)  # only d2 has a vector: 3 + 2 = 5
    assert got == [("d2", 5.0), ("d1", 4.0), ("d3", 2.0), ("d4", 1.0)]


def test_combine_scores_table():
    assert [combine_scores(2.0, 3.0, m) for m in ("total", "multiply", "avg", "max", "min")] == [
        5.0,
        6.0,
        2.5,
        3.0,
        2.0,
    ]


def test_rrf_by_hand():
    # rank_constant 60: a = 1/61 + 1/62, b = 1/62 + 1/61, c = 1/63; a and b tie -> first ranking's order
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "a"]], rank_constant=60)
    assert [d for d, _ in fused] == ["a", "b", "c"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2][1] == pytest.approx(1 / 63)
    assert reciprocal_rank_fusion([["a", "b", "c"]], k=2) == [("a", 1 / 61), ("b", 1 / 62)]


def test_plan_is_immutable_and_replace_validates():
    plan = SearchPlan("q")
    with pytest.raises(AttributeError):
        plan.k = 3  # type: ignore[misc]
    assert plan.replace(k=3).k == 3 and plan.k == 10
    with pytest.raises(PlanError, match=re.escape("score_mode must be one of")):
        plan.replace(score_mode="sum")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be a positive integer, got 0"),
        ({"window_size": "50"}, "window_size must be a positive integer, got '50'"),
        ({"window_size": 10_001}, "exceeds index.max_rescore_window"),
        ({"fields": {"titel": 1.0}}, "unknown field 'titel'"),
        ({"fields": {"title": -1.0}}, "boost of 'title' must be a positive number"),
        ({"query_weight": float("nan")}, "query_weight must be a finite number"),
        ({"query_weight": 1e308}, "query_weight must be between -1,000,000 and 1,000,000, got 1e+308"),
        (
            {"rescore_query_weight": -1e7},
            "rescore_query_weight must be between -1,000,000 and 1,000,000, got -10000000.0",
        ),
        ({"fields": {"title": 1e300}}, "boost of 'title' must be a positive number up to 1,000,000, got 1e+300"),
        ({"mode": "hybrid", "k": 60, "window_size": 50}, "window_size 50 < k 60"),
        ({"mode": "hybrid", "rank_constant": 10**400}, "rank_constant must be at most 2147483647, got 1000"),
        ({"mode": "semantic"}, "mode must be one of bm25, rerank, dense, hybrid, hybrid_rerank"),
    ],
)
def test_plan_rejects_bad_parameters(kwargs, message):
    with pytest.raises(PlanError, match=re.escape(message)):
        SearchPlan("q", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"year_from": 2**63}, "year_from must be a year from 0 to 9999, got 9223372036854775808"),
        ({"year_to": -(2**63) - 1}, "year_to must be a year from 0 to 9999, got -9223372036854775809"),
        ({"year_from": MAX_YEAR + 1}, "year_from must be a year from 0 to 9999, got 10000"),
        ({"year_to": MIN_YEAR - 1}, "year_to must be a year from 0 to 9999, got -1"),
        ({"year_from": "2010"}, "year_from must be an integer year, got '2010'"),
        ({"year_to": True}, "year_to must be an integer year, got True"),
    ],
)
def test_filters_refuse_years_outside_the_range_issue_probe_1(kwargs, message):
    """A year outside a 64-bit integer made tantivy raise (a 500 in `serve`); the plan refuses it, naming the field."""
    with pytest.raises(PlanError, match=re.escape(message)):
        Filters(**kwargs)


def test_filters_take_the_year_range_bounds():
    f = Filters(year_from=MIN_YEAR, year_to=MAX_YEAR)
    assert (f.year_from, f.year_to) == (0, 9999)


def test_first_pass_size():
    assert SearchPlan("q", k=10, window_size=50).first_pass_size == 50
    assert SearchPlan("q", k=100, window_size=50).first_pass_size == 100
    assert SearchPlan("q", k=10, window_size=50, mode="bm25").first_pass_size == 10
