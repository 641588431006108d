"""Paired significance tests over queries: is a system's per-query metric better than a baseline's?

Both tests pair the two systems query by query on the differences ``d_q = system_q - baseline_q``:

* ``"randomization"``: the paired sign-flip permutation test (Smucker et al., CIKM 2007). Under the null
  hypothesis each ``d_q`` is as likely to be ``-d_q``; the p-value is the share of sign assignments whose
  mean difference is at least as far from 0 as the observed one. With ``2**n <= n_resamples`` scipy
  enumerates every assignment (an exact test), else it draws ``n_resamples`` of them from ``seed``.
* ``"t-test"``: Student's paired t-test (``scipy.stats.ttest_rel``).

All p-values are two-sided. scipy is imported lazily (the ``report`` extra).

:func:`compare_to_baseline` tests several runs on several metrics (Table 9: 2 re-sorts x 4 windows x 2 metrics),
so it also gives each test its Holm-Bonferroni adjusted p-value (:func:`holm`) over that family, ``p_holm``:
a test with ``p_holm < alpha`` is significant with the family-wise error rate held at ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from es_biomed.errors import require

__all__ = ["PairedTest", "paired_test", "compare_to_baseline", "holm", "format_p", "METHODS"]

Method = Literal["randomization", "t-test"]
METHODS: tuple[str, ...] = ("randomization", "t-test")


@dataclass(frozen=True)
class PairedTest:
    """Result of one paired test of ``system`` against ``baseline`` on one metric.

    Attributes:
        method: ``"randomization"`` or ``"t-test"``.
        metric: Metric name (free text, e.g. ``"NDCG@10"``).
        n: Number of paired queries.
        baseline_mean: Mean of the baseline's per-query values.
        system_mean: Mean of the system's per-query values.
        delta: ``system_mean - baseline_mean``.
        p_value: Two-sided p-value; 1.0 when every difference is 0.
    """

    method: Method
    metric: str
    n: int
    baseline_mean: float
    system_mean: float
    delta: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: ``{"method": ..., "metric": ..., "n": ..., ..., "p_value": ...}``."""
        return asdict(self)


def format_p(test: Mapping[str, Any] | None) -> str:
    """A p-value cell for a table: ``"0.0123"``, ``"<0.0001"``, or ``"–"`` when there is no test."""
    if not test:
        return "–"
    p = test["p_value"]
    if p != p:  # NaN (a t-test over one query)
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _mean_diff(x: Any, y: Any, axis: int = -1) -> Any:
    import numpy as np

    return np.mean(x - y, axis=axis)


def _missing(left: Mapping[str, Any], right: Mapping[str, Any], side: str) -> str:
    gone = sorted(set(left) - set(right))
    return f"{len(gone)} missing from {side} (e.g. {', '.join(map(repr, gone[:5]))})" if gone else ""


def paired_test(
    baseline: Mapping[str, float],
    system: Mapping[str, float],
    method: Method = "randomization",
    metric: str = "",
    n_resamples: int = 10_000,
    seed: int = 42,
) -> PairedTest:
    """Paired two-sided significance test of ``system`` against ``baseline`` over the same queries.

    Args:
        baseline: Per-query values of one metric for the baseline, ``{qid: value}``.
        system: Per-query values of the same metric for the system; must have the same qids.
        method: ``"randomization"`` (paired sign-flip permutation test) or ``"t-test"`` (paired t-test).
        metric: Metric name, only recorded in the result.
        n_resamples: Sign assignments drawn by the randomization test; when ``2**n`` is at most this,
            scipy runs the exact test over all of them.
        seed: Seed of the randomization test's draws (results are deterministic for a seed).

    Returns:
        The :class:`PairedTest`. The p-value is 1.0 when every difference is 0. For the t-test, when every
        difference is the same non-zero value it is 0.0 (t is infinite), and with a single query NaN.

    Raises:
        ValueError: Unknown ``method``, ``n_resamples < 1``, no queries, qid sets that differ, or a
            non-finite value.
        MissingDependencyError: scipy is not installed (an ``ImportError``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if set(baseline) != set(system):
        parts = [p for p in (_missing(baseline, system, "system"), _missing(system, baseline, "baseline")) if p]
        raise ValueError(f"baseline and system must cover the same queries: {'; '.join(parts)}")
    if not baseline:
        raise ValueError("baseline and system are empty: no queries to test")
    qids = sorted(baseline)
    base = [float(baseline[q]) for q in qids]
    syst = [float(system[q]) for q in qids]
    for q, b, s in zip(qids, base, syst, strict=True):
        if not (math.isfinite(b) and math.isfinite(s)):
            raise ValueError(f"query {q!r}: non-finite value (baseline {b}, system {s})")
    n = len(qids)
    diffs = [s - b for b, s in zip(base, syst, strict=True)]
    base_mean, sys_mean = math.fsum(base) / n, math.fsum(syst) / n
    if all(d == 0 for d in diffs):
        p = 1.0
    elif method == "t-test":
        if n < 2:
            p = math.nan
        elif all(d == diffs[0] for d in diffs):
            p = 0.0  # zero variance, non-zero mean: t is infinite (scipy would warn about precision loss)
        else:
            stats = require("scipy.stats", "report")
            p = float(stats.ttest_rel(syst, base).pvalue)
    else:
        np = require("numpy", "report")
        stats = require("scipy.stats", "report")
        res = stats.permutation_test(
            (np.asarray(syst), np.asarray(base)),
            _mean_diff,
            permutation_type="samples",
            vectorized=True,
            n_resamples=n_resamples,
            alternative="two-sided",
            rng=seed,
        )
        p = min(1.0, float(res.pvalue))
    return PairedTest(method, metric, n, base_mean, sys_mean, sys_mean - base_mean, p)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (Holm 1979), in the input order.

    Sorted ascending, the i-th smallest p (0-based) of m becomes ``max over j <= i of min(1, (m - j) * p_(j))``.

    Example:
        >>> holm([0.01, 0.04, 0.03])
        [0.03, 0.06, 0.06]
    """
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = round(running, 12)
    return adjusted


def compare_to_baseline(
    per_query: Mapping[str, Mapping[str, Mapping[str, float]]],
    baseline: str = "bm25",
    metrics: Sequence[str] | None = None,
    method: Method = "randomization",
    n_resamples: int = 10_000,
    seed: int = 42,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Test every run against the baseline run, metric by metric.

    Args:
        per_query: ``{run_name: {qid: {metric: value}}}``, e.g. :func:`es_biomed.eval.metrics.per_query`
            of each run against the same qrels.
        baseline: Name of the baseline run in ``per_query``.
        metrics: Metrics to test; default: those of the baseline's first query.
        method: ``"randomization"`` or ``"t-test"`` (see :func:`paired_test`).
        n_resamples: Draws of the randomization test.
        seed: Seed of the randomization test.

    Returns:
        ``{run_name: {metric: PairedTest.to_dict() + {"p_holm": ..., "family": m}}}`` for every run but the
        baseline, in ``per_query``'s order; ``p_holm`` is :func:`holm` over all ``m`` tests of this call.

    Raises:
        ValueError: ``baseline`` is not a run, it has no queries, a query lacks a metric, or the runs'
            qid sets differ (the message names the run).
    """
    if baseline not in per_query:
        raise ValueError(f"baseline {baseline!r} is not among the runs: {sorted(per_query)}")
    base_runs = per_query[baseline]
    if metrics is None:
        if not base_runs:
            raise ValueError(f"baseline {baseline!r} has no queries")
        metrics = list(next(iter(base_runs.values())))

    def column(run: str, metric: str) -> dict[str, float]:
        out = {}
        for qid, vals in per_query[run].items():
            if metric not in vals:
                raise ValueError(f"run {run!r}, query {qid!r}: no value for metric {metric!r}")
            out[qid] = vals[metric]
        return out

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for run in per_query:
        if run == baseline:
            continue
        out[run] = {}
        for metric in metrics:
            try:
                res = paired_test(column(baseline, metric), column(run, metric), method, metric, n_resamples, seed)
            except ValueError as exc:
                raise ValueError(f"run {run!r} vs baseline {baseline!r}, metric {metric!r}: {exc}") from exc
            out[run][metric] = res.to_dict()
    tests = [t for per_metric in out.values() for t in per_metric.values()]
    for t, adjusted in zip(tests, holm([t["p_value"] for t in tests]), strict=True):
        t["p_holm"] = adjusted
        t["family"] = len(tests)
    return out
