"""The Jaccard debiasing of the BioMedBERT paper, made visible.

The BioMedBERT BioASQ protocol removes every question–context pair whose token Jaccard
(:func:`es_biomed.corpus.bioasq.jaccard`) exceeds 0.30: such pairs can be found by lexical overlap alone.
This module measures what that rule does to a :class:`~es_biomed.corpus.types.RetrievalSet`:

* :func:`pair_overlaps` lists the Jaccard of every judged pair, the removed ones (``ds.ignore``) included;
* :func:`jaccard_analysis` summarises the distribution, how many pairs and questions each threshold removes,
  and how the runs score on queries grouped by the overlap of their kept pairs.

It works for any set (BEIR too): there ``ignore`` is usually empty and only the distribution is informative.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any

from es_biomed.corpus.bioasq import jaccard
from es_biomed.corpus.types import RetrievalSet, Run
from es_biomed.eval.metrics import parse_metric, per_query

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DEFAULT_BUCKETS",
    "HISTOGRAM_EDGES",
    "pair_overlaps",
    "bucket_labels",
    "jaccard_analysis",
]

#: Thresholds reported under ``"removed"`` (the paper uses 0.30).
DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
#: Bucket edges for ``"by_bucket"``: a bucket is ``[lo, hi)``, the last one ``[lo, 1.0]``.
DEFAULT_BUCKETS = (0.0, 0.05, 0.10, 0.15, 0.20, 0.30, 1.0)
#: Histogram edges of the pair distribution: 0.0 to 1.0 in steps of 0.05.
HISTOGRAM_EDGES = tuple(round(i * 0.05, 2) for i in range(21))


def _judged_pairs(ds: RetrievalSet) -> Iterable[tuple[str, str]]:
    for qid, docs in ds.qrels.items():
        for doc_id, grade in docs.items():
            if grade > 0:
                yield qid, doc_id
    for qid, docs in ds.ignore.items():
        for doc_id in docs:
            yield qid, doc_id


def pair_overlaps(ds: RetrievalSet) -> list[tuple[str, str, float]]:
    """The Jaccard overlap of every judged question–document pair.

    A judged pair is a relevant one in ``ds.qrels`` (grade > 0) or a removed one in ``ds.ignore``; each pair
    appears once. Pairs whose document is not in ``ds.corpus`` or whose query is not in ``ds.queries`` are
    skipped (the loaders count them).

    Args:
        ds: The retrieval set.

    Returns:
        ``(qid, doc_id, J)`` triples sorted by ``(qid, doc_id)``, with
        ``J = jaccard(ds.queries[qid], ds.corpus[doc_id].text)``.
    """
    out = []
    for qid, doc_id in set(_judged_pairs(ds)):
        if qid in ds.queries and doc_id in ds.corpus:
            out.append((qid, doc_id, jaccard(ds.queries[qid], ds.corpus[doc_id].text)))
    out.sort(key=lambda t: (t[0], t[1]))
    return out


def _bin(value: float, edges: Sequence[float]) -> int:
    """Index of the ``[lo, hi)`` bin holding ``value``; the last bin is closed."""
    return min(max(bisect_right(edges, value) - 1, 0), len(edges) - 2)


def bucket_labels(buckets: Sequence[float] = DEFAULT_BUCKETS) -> list[str]:
    """Labels of the buckets, e.g. ``"[0.00, 0.05)"``, the last one closed (``"[0.30, 1.00]"``).

    Args:
        buckets: Bucket edges.

    Returns:
        One label per bucket.
    """
    n = len(buckets) - 1
    return [f"[{lo:.2f}, {hi:.2f}{']' if i == n - 1 else ')'}" for i, (lo, hi) in enumerate(pairwise(buckets))]


def _check(thresholds: Sequence[float], buckets: Sequence[float]) -> None:
    for t in thresholds:
        if not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0:
            raise ValueError(f"thresholds must lie in [0, 1]; got {t!r}")
    if len(buckets) < 2 or buckets[0] != 0.0 or buckets[-1] != 1.0:
        raise ValueError(f"buckets must be edges from 0.0 to 1.0; got {list(buckets)!r}")
    if any(hi <= lo for lo, hi in pairwise(buckets)):
        raise ValueError(f"buckets must be strictly increasing; got {list(buckets)!r}")


def _quantiles(values: Sequence[float]) -> dict[str, float | None]:
    names = {"min": 0.0, "p25": 0.25, "median": 0.5, "p75": 0.75, "p90": 0.9, "max": 1.0}
    if not values:
        return dict.fromkeys(names)
    import numpy as np

    qs = np.quantile(np.asarray(values, dtype=float), list(names.values()))
    return {k: float(v) for k, v in zip(names, qs, strict=True)}


def jaccard_analysis(
    ds: RetrievalSet,
    runs: Mapping[str, Run] | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    buckets: Sequence[float] = DEFAULT_BUCKETS,
    metric: str = "MRR@10",
    scoring_ignore: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, Any]:
    """Summarise the question–document Jaccard overlaps of a set and how runs fare across them.

    Args:
        ds: The retrieval set (as loaded, i.e. after any removal: removed pairs sit in ``ds.ignore``).
        runs: Optional runs by name, scored with :func:`~es_biomed.eval.metrics.per_query` (``ds.ignore``
            applied) for ``"by_bucket"``.
        thresholds: Thresholds for ``"removed"``, each in [0, 1].
        buckets: Strictly increasing bucket edges from 0.0 to 1.0.
        metric: The per-query metric averaged in each bucket (e.g. ``"MRR@10"``, ``"NDCG@10"``).
        scoring_ignore: The documents dropped from runs before scoring, when they differ from ``ds.ignore``
            (a pooled corpus also ignores other documents of the same questions, which are not judged pairs:
            pass the unpooled set as ``ds`` and the pooled set's ``ignore`` here).

    Returns:
        A JSON-serialisable dict::

            {"pairs": int, "metric": str, "runs": [name, ...],
             "distribution": {"edges": [0.0, 0.05, ..., 1.0], "counts": [...20 ints],
                              "quantiles": {"min", "p25", "median", "p75", "p90", "max": float | None}},
             "removed": {str(t): {"pairs": pairs with J > t, "questions": queries with no pair J <= t}},
             "by_bucket": {label: {"queries": int, run_name: mean metric | None, ...}}}

        A query's bucket is the maximum J over its kept pairs (relevant pairs in ``ds.qrels``, found in the
        corpus and not in ``ds.ignore``); queries without such a pair are in no bucket. Buckets holding no
        query give ``None`` per run.

    Raises:
        ValueError: For a threshold outside [0, 1], bad bucket edges or an unknown metric.
    """
    thresholds, buckets = list(thresholds), [float(b) for b in buckets]
    _check(thresholds, buckets)
    parse_metric(metric)
    runs = dict(runs or {})
    pairs = pair_overlaps(ds)
    values = [j for _, _, j in pairs]

    counts = [0] * (len(HISTOGRAM_EDGES) - 1)
    for j in values:
        counts[_bin(j, HISTOGRAM_EDGES)] += 1

    by_query: dict[str, list[float]] = {}
    for qid, _, j in pairs:
        by_query.setdefault(qid, []).append(j)
    removed = {
        str(t): {
            "pairs": sum(j > t for j in values),
            "questions": sum(all(j > t for j in js) for js in by_query.values()),
        }
        for t in thresholds
    }

    kept: dict[str, float] = {}
    for qid, doc_id, j in pairs:
        if ds.qrels.get(qid, {}).get(doc_id, 0) > 0 and doc_id not in ds.ignore.get(qid, ()):
            kept[qid] = max(kept.get(qid, 0.0), j)
    members: list[list[str]] = [[] for _ in range(len(buckets) - 1)]
    for qid in sorted(kept):
        members[_bin(kept[qid], buckets)].append(qid)
    skip = ds.ignore if scoring_ignore is None else scoring_ignore
    scores = {name: per_query(ds.qrels, run, [metric], skip) for name, run in runs.items()}
    by_bucket: dict[str, dict[str, Any]] = {}
    for label, qids in zip(bucket_labels(buckets), members, strict=True):
        row: dict[str, Any] = {"queries": len(qids)}
        for name, pq in scores.items():
            vals = [pq[q][metric] if q in pq else 0.0 for q in qids]
            row[name] = float(sum(vals) / len(vals)) if vals else None
        by_bucket[label] = row

    return {
        "pairs": len(pairs),
        "metric": metric,
        "runs": list(runs),
        "distribution": {"edges": list(HISTOGRAM_EDGES), "counts": counts, "quantiles": _quantiles(values)},
        "removed": removed,
        "by_bucket": by_bucket,
    }
