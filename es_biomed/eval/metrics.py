"""IR metrics through pytrec_eval (the trec_eval implementation BEIR uses), with BEIR-style keys.

Conventions:
* A run is ranked by score, ties keeping the run's insertion order (our engines emit best first). The run is
  converted to rank-based scores before it reaches pytrec_eval, so trec_eval's own tie-break (by doc id)
  never reorders what the engine returned.
* ``MRR@k`` is trec_eval's ``recip_rank`` on the run cut to its top k.
* Every judged query counts: a query with an empty or missing run scores 0 (BEIR averages only over the
  queries present in the run).
* ``ignore[qid]`` lists documents removed from that query's run before scoring (BioASQ Jaccard protocol).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from es_biomed.corpus.types import Qrels, Run

__all__ = ["evaluate", "per_query", "average", "parse_metric", "DEFAULT_METRICS"]

DEFAULT_METRICS = ("NDCG@10", "Recall@100", "MRR@10")
_MEASURES = {"NDCG": "ndcg_cut", "RECALL": "recall", "P": "P", "MAP": "map_cut"}
_METRIC = re.compile(r"^(NDCG|Recall|MRR|P|MAP)@(\d+)$", re.IGNORECASE)


def parse_metric(name: str) -> tuple[str, int]:
    """``"NDCG@10" -> ("NDCG", 10)``; raises ValueError for unknown names."""
    m = _METRIC.match(name)
    if not m:
        raise ValueError(f"unknown metric {name!r}; expected NDCG@k, Recall@k, MRR@k, P@k or MAP@k")
    return m.group(1).upper(), int(m.group(2))


def _ranked(run: Run, ignore: Mapping[str, Iterable[str]] | None) -> dict[str, list[str]]:
    out = {}
    for qid, docs in run.items():
        skip = set(ignore.get(qid, ())) if ignore else set()
        order = sorted(enumerate(docs.items()), key=lambda t: (-t[1][1], t[0]))
        out[qid] = [d for _, (d, _) in order if d not in skip]
    return out


def _rank_scores(ranked: Mapping[str, list[str]], cutoff: int | None = None) -> dict[str, dict[str, float]]:
    return {qid: {d: float(len(docs) - i) for i, d in enumerate(docs[:cutoff])} for qid, docs in ranked.items()}


def per_query(
    qrels: Qrels, run: Run, metrics: Iterable[str] = DEFAULT_METRICS, ignore: Mapping[str, Iterable[str]] | None = None
) -> dict[str, dict[str, float]]:
    """Metric values per judged query: ``{qid: {"NDCG@10": ...}}``."""
    import pytrec_eval

    metrics = list(metrics)
    ranked = _ranked(run, ignore)
    judged = {q: {d: int(g) for d, g in docs.items()} for q, docs in qrels.items() if docs}
    out: dict[str, dict[str, float]] = {q: {m: 0.0 for m in metrics} for q in judged}
    plain = [m for m in metrics if parse_metric(m)[0] != "MRR"]
    if plain:
        measures = {f"{_MEASURES[parse_metric(m)[0]]}.{parse_metric(m)[1]}" for m in plain}
        scores = pytrec_eval.RelevanceEvaluator(judged, measures).evaluate(_rank_scores(ranked))
        for q, vals in scores.items():
            for m in plain:
                kind, k = parse_metric(m)
                out[q][m] = vals[f"{_MEASURES[kind]}_{k}"]
    for m in metrics:
        kind, k = parse_metric(m)
        if kind != "MRR":
            continue
        scores = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(_rank_scores(ranked, cutoff=k))
        for q, vals in scores.items():
            out[q][m] = vals["recip_rank"]
    return out


def evaluate(
    qrels: Qrels, run: Run, metrics: Iterable[str] = DEFAULT_METRICS, ignore: Mapping[str, Iterable[str]] | None = None
) -> dict[str, float]:
    """Mean of each metric over all judged queries (missing queries score 0).

    Example:
        >>> evaluate({"q": {"a": 1}}, {"q": {"b": 2.0, "a": 1.0}}, ["MRR@10", "MRR@1"])
        {'MRR@10': 0.5, 'MRR@1': 0.0}
    """
    metrics = list(metrics)
    return average(per_query(qrels, run, metrics, ignore), metrics)


def average(pq: Mapping[str, Mapping[str, float]], metrics: Iterable[str]) -> dict[str, float]:
    """Mean of each metric over the queries of a :func:`per_query` result (0.0 for no query)."""
    n = len(pq)
    return {m: (sum(v[m] for v in pq.values()) / n if n else 0.0) for m in metrics}
