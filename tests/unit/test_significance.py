"""Paired significance tests, checked against hand-worked p-values."""

from __future__ import annotations

import math
import re
import sys

import pytest

from es_biomed.errors import MissingDependencyError
from es_biomed.eval.significance import PairedTest, compare_to_baseline, holm, paired_test


def test_exact_randomization_all_positive():
    # d = (+1, +1, +1), observed mean 1. n = 3 <= log2(10_000): scipy enumerates all 2**3 = 8 sign assignments.
    # Their means: +1 once, +1/3 three times, -1/3 three times, -1 once -> |mean| >= 1 in 2 of 8: p = 2/8 = 0.25
    res = paired_test({"q1": 0.0, "q2": 0.5, "q3": 0.0}, {"q1": 1.0, "q2": 1.5, "q3": 1.0})
    assert res.method == "randomization"
    assert res.n == 3
    assert res.baseline_mean == pytest.approx(0.5 / 3)
    assert res.system_mean == pytest.approx(3.5 / 3)
    assert res.delta == pytest.approx(1.0)
    assert res.p_value == pytest.approx(0.25)


def test_exact_randomization_mixed_signs():
    # d = (+1, +2, -1), observed sum 2. The 8 signed sums of (1, 2, 1): 4, 2, 0, -2, 2, 0, -2, -4.
    # |sum| >= 2 in 6 of 8 -> p = 6/8 = 0.75
    res = paired_test({"a": 0.0, "b": 0.0, "c": 1.0}, {"a": 1.0, "b": 2.0, "c": 0.0}, metric="NDCG@10")
    assert res.metric == "NDCG@10"
    assert res.p_value == pytest.approx(0.75)


def test_t_test_by_hand():
    from scipy import stats

    base = {"q1": 0.0, "q2": 0.0, "q3": 0.0, "q4": 1.0}
    syst = {"q1": 1.0, "q2": 2.0, "q3": 3.0, "q4": 0.0}
    # d = (1, 2, 3, -1): mean 1.25; squared deviations 0.0625 + 0.5625 + 3.0625 + 5.0625 = 8.75
    # sd = sqrt(8.75 / 3); t = 1.25 / (sd / sqrt(4)); two-sided p = 2 * sf(t, df = 3)
    sd = math.sqrt(8.75 / 3)
    t = 1.25 / (sd / math.sqrt(4))
    assert t == pytest.approx(1.46385, abs=1e-4)
    res = paired_test(base, syst, method="t-test")
    assert res.method == "t-test"
    assert res.delta == pytest.approx(1.25)
    assert res.p_value == pytest.approx(2 * stats.t.sf(t, 3))


@pytest.mark.parametrize("method", ["randomization", "t-test"])
def test_all_zero_differences_give_p_one(method):
    values = {"q1": 0.3, "q2": 0.7, "q3": 0.1, "q4": 0.0}
    res = paired_test(values, dict(values), method=method)
    assert res.p_value == 1.0
    assert res.delta == 0.0


def test_t_test_degenerate_cases():
    # same non-zero difference everywhere: zero variance, t infinite
    assert paired_test({"a": 0.0, "b": 0.5}, {"a": 1.0, "b": 1.5}, method="t-test").p_value == 0.0
    # one query: no degrees of freedom
    assert math.isnan(paired_test({"a": 0.0}, {"a": 1.0}, method="t-test").p_value)


def test_randomization_sampled_is_deterministic():
    # 20 queries: 2**20 > n_resamples, so scipy samples sign assignments from the seed
    base = {f"q{i:02d}": (i % 5) / 5 for i in range(20)}
    syst = {q: v + (0.1 if i % 3 else -0.05) for i, (q, v) in enumerate(base.items())}
    first = paired_test(base, syst, n_resamples=2000, seed=7)
    assert first == paired_test(base, syst, n_resamples=2000, seed=7)
    assert 0.0 < first.p_value < 0.05


def test_mismatched_qids():
    msg = "baseline and system must cover the same queries: 2 missing from system (e.g. 'b', 'c'); "
    msg += "1 missing from baseline (e.g. 'd')"
    with pytest.raises(ValueError, match=re.escape(msg)):
        paired_test({"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 1.0, "d": 0.0})


def test_mismatch_lists_at_most_five():
    with pytest.raises(ValueError, match=re.escape("7 missing from system (e.g. 'q0', 'q1', 'q2', 'q3', 'q4')")):
        paired_test({f"q{i}": 0.0 for i in range(7)}, {})


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        paired_test({}, {})
    with pytest.raises(ValueError, match=re.escape("method must be one of")):
        paired_test({"a": 1.0}, {"a": 1.0}, method="wilcoxon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_resamples"):
        paired_test({"a": 1.0}, {"a": 1.0}, n_resamples=0)
    with pytest.raises(ValueError, match=re.escape("query 'a': non-finite")):
        paired_test({"a": math.nan}, {"a": 1.0})


def test_missing_scipy(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(MissingDependencyError, match=re.escape("pip install 'es-biomed[report]'")):
        paired_test({"a": 0.0, "b": 1.0}, {"a": 1.0, "b": 1.0})
    assert issubclass(MissingDependencyError, ImportError)


def test_to_dict():
    res = PairedTest("t-test", "MRR@10", 3, 0.5, 0.75, 0.25, 0.1)
    assert res.to_dict() == {
        "method": "t-test",
        "metric": "MRR@10",
        "n": 3,
        "baseline_mean": 0.5,
        "system_mean": 0.75,
        "delta": 0.25,
        "p_value": 0.1,
    }


PER_QUERY = {
    "bm25": {
        "q1": {"NDCG@10": 0.0, "MRR@10": 0.0},
        "q2": {"NDCG@10": 0.5, "MRR@10": 0.5},
        "q3": {"NDCG@10": 0.0, "MRR@10": 1.0},
    },
    "dense": {
        "q1": {"NDCG@10": 1.0, "MRR@10": 0.0},
        "q2": {"NDCG@10": 1.5, "MRR@10": 0.5},
        "q3": {"NDCG@10": 1.0, "MRR@10": 1.0},
    },
    "hybrid": {
        "q1": {"NDCG@10": 0.0, "MRR@10": 1.0},
        "q2": {"NDCG@10": 0.5, "MRR@10": 0.5},
        "q3": {"NDCG@10": 0.0, "MRR@10": 1.0},
    },
}


def test_compare_to_baseline_layout():
    out = compare_to_baseline(PER_QUERY)
    assert list(out) == ["dense", "hybrid"]
    assert list(out["dense"]) == ["NDCG@10", "MRR@10"]  # metrics of bm25's first query, in order
    dense = out["dense"]["NDCG@10"]
    assert {k: v for k, v in dense.items() if k not in ("p_holm", "family")} == paired_test(
        {q: v["NDCG@10"] for q, v in PER_QUERY["bm25"].items()},
        {q: v["NDCG@10"] for q, v in PER_QUERY["dense"].items()},
        metric="NDCG@10",
    ).to_dict()
    # Holm over the family of 4 tests: p = (0.25, 1, 1, 1) -> 4 * 0.25 = 1 for the smallest, 1 for the rest
    assert [t["p_holm"] for r in out.values() for t in r.values()] == [1.0, 1.0, 1.0, 1.0]
    assert {t["family"] for r in out.values() for t in r.values()} == {4}
    assert dense["delta"] == pytest.approx(1.0) and dense["p_value"] == pytest.approx(0.25)  # d = (1, 1, 1)
    assert out["dense"]["MRR@10"]["p_value"] == 1.0  # identical MRR
    # hybrid MRR: d = (1, 0, 0); signed sums +-1 -> |mean| >= 1/3 in all 8 assignments -> p = 1
    assert out["hybrid"]["MRR@10"]["p_value"] == pytest.approx(1.0)
    ttest = compare_to_baseline(PER_QUERY, metrics=["MRR@10"], method="t-test")
    assert list(ttest["hybrid"]) == ["MRR@10"] and ttest["hybrid"]["MRR@10"]["method"] == "t-test"


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 of m = 3: 3 * 0.01 = 0.03; 2 * 0.03 = 0.06; 1 * 0.04 = 0.04 -> max so far 0.06
    assert holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]
    assert holm([0.004, 0.6]) == [0.008, 0.6]
    assert holm([0.3, 0.3, 0.3, 0.9]) == [1.0, 1.0, 1.0, 1.0]  # capped at 1
    assert holm([]) == [] and holm([0.02]) == [0.02]


def test_compare_to_baseline_holm_family():
    # dense NDCG d = (1, 1, 1): exact p = 2/8; with a 2-query t-test family the adjustment is visible
    pq = {
        "bm25": {"a": {"m": 0.0}, "b": {"m": 0.0}, "c": {"m": 0.0}, "d": {"m": 0.0}},
        "up": {"a": {"m": 1.0}, "b": {"m": 1.0}, "c": {"m": 1.0}, "d": {"m": 1.0}},
        "same": {"a": {"m": 0.0}, "b": {"m": 0.0}, "c": {"m": 0.0}, "d": {"m": 0.0}},
    }
    out = compare_to_baseline(pq)
    assert out["up"]["m"]["p_value"] == pytest.approx(2 / 16)  # exact: 2 of 16 sign assignments as extreme
    assert out["up"]["m"]["p_holm"] == pytest.approx(2 * 2 / 16) and out["same"]["m"]["p_holm"] == 1.0
    assert out["up"]["m"]["family"] == 2


def test_compare_to_baseline_errors():
    with pytest.raises(
        ValueError, match=re.escape("baseline 'bm2' is not among the runs: ['bm25', 'dense', 'hybrid']")
    ):
        compare_to_baseline(PER_QUERY, baseline="bm2")
    short = {"bm25": PER_QUERY["bm25"], "dense": {"q1": {"NDCG@10": 1.0, "MRR@10": 0.0}}}
    with pytest.raises(ValueError, match=re.escape("run 'dense' vs baseline 'bm25', metric 'NDCG@10': ")):
        compare_to_baseline(short)
    with pytest.raises(ValueError, match=re.escape("no value for metric 'P@5'")):
        compare_to_baseline(PER_QUERY, metrics=["P@5"])
