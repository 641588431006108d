"""The BioMedBERT paper's Table 9: MRR@5 / MRR@10 of BM25 and of BM25 + a dense re-sort of its top k.

Three runs per window k (20, 30, 40, 50):

* ``bm25``: the first pass alone (its ranking does not depend on k);
* ``bm25+cosine``: **the paper's method**, a pure cosine re-sort of BM25's top k. In Elasticsearch terms the
  rescore with ``query_weight: 0`` and ``rescore_query_weight: 1`` (score ``cosine + 1.0``), returning k hits;
* ``bm25+rerank``: the tuned plan (``query_weight`` and ``rescore_query_weight`` of the preset).

Each is reported with its relative gain over BM25 and a paired test over questions against BM25
(:mod:`es_biomed.eval.significance`). :data:`PAPER_TABLE9` holds the paper's own numbers, typed in from its
Table 9 as published, for the side-by-side layout of :func:`table9_markdown`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from es_biomed.corpus.types import RetrievalSet, Run
from es_biomed.eval.metrics import average, per_query
from es_biomed.eval.significance import format_p
from es_biomed.query.plan import SearchPlan

__all__ = [
    "PAPER_TABLE9",
    "TABLE9_RUNS",
    "TABLE9_METRICS",
    "table9_plans",
    "score_table9",
    "table9_markdown",
    "paper_value",
]

TABLE9_METRICS = ("MRR@5", "MRR@10")
TABLE9_RUNS = ("bm25", "bm25+cosine", "bm25+rerank")
#: The paper's Table 9 (BioASQ; "ES" is BM25 in Elasticsearch, "ES+BioMedBERT" its cosine re-sort of the top k).
PAPER_TABLE9: dict[str, dict[str, dict[str, float]]] = {
    "20": {"ES": {"MRR@5": 0.172, "MRR@10": 0.20}, "ES+BioMedBERT": {"MRR@5": 0.253, "MRR@10": 0.285}},
    "30": {"ES": {"MRR@5": 0.173, "MRR@10": 0.20}, "ES+BioMedBERT": {"MRR@5": 0.237, "MRR@10": 0.273}},
    "40": {"ES": {"MRR@5": 0.173, "MRR@10": 0.21}, "ES+BioMedBERT": {"MRR@5": 0.231, "MRR@10": 0.272}},
    "50": {"ES": {"MRR@5": 0.172, "MRR@10": 0.20}, "ES+BioMedBERT": {"MRR@5": 0.225, "MRR@10": 0.269}},
}


def paper_value(v: float) -> str:
    """A number of the paper's table as printed there: at least two decimals, no invented third one (0.20, 0.172).

    Example:
        >>> paper_value(0.2), paper_value(0.172)
        ('0.20', '0.172')
    """
    text = f"{v:.3f}".rstrip("0")
    return text + "0" * max(0, 2 - len(text.split(".")[1]))


def run_key(run: str, window: int) -> str:
    """The name of one run at one window: ``"bm25+cosine@20"`` (``"bm25"`` has one run for every window)."""
    return run if run == "bm25" else f"{run}@{window}"


def table9_plans(plan: SearchPlan, windows: Sequence[int], depth: int) -> dict[str, SearchPlan]:
    """The plans of one Table 9: BM25 to ``depth`` hits, and per window the cosine and the tuned re-sorts.

    The re-sorts return ``max(k, 10)`` hits, all inside the rescore window when ``k >= 10`` (the paper's windows
    are 20 to 50). With a smaller window, hits below it would score ``0 * bm25 = 0`` in the cosine run, and the
    engines break such ties in their own document order (the embedded engine keeps BM25's).
    """
    plans = {"bm25": plan.replace(mode="bm25", k=depth)}
    for w in windows:
        size = max(w, 10)
        plans[run_key("bm25+cosine", w)] = plan.replace(
            mode="rerank", window_size=w, k=size, query_weight=0.0, rescore_query_weight=1.0, score_mode="total"
        )
        plans[run_key("bm25+rerank", w)] = plan.replace(mode="rerank", window_size=w, k=size)
    return plans


def _gain(value: float, base: float) -> float | None:
    return value / base - 1.0 if base else None


def score_table9(
    ds: RetrievalSet,
    runs: Mapping[str, Run],
    windows: Sequence[int],
    significance: str | None = "randomization",
    n_resamples: int = 10_000,
) -> dict[str, Any]:
    """Score the runs of :func:`table9_plans`.

    Args:
        ds: The set the runs answer (its ``ignore`` lists are dropped from runs before scoring).
        runs: ``{run_key: run}``.
        windows: The windows of the runs.
        significance: ``"randomization"`` or ``"t-test"`` against BM25 over questions, or None for no test.
        n_resamples: Resamples of the randomization test.

    Returns:
        ``{"table": {run: {k: {metric: value}}}, "gain": {run: {k: {metric: relative gain over bm25}}},
        "significance": {run: {k: {metric: PairedTest dict}}}, "per_query": {run_key: {qid: {metric: v}}}}``;
        ``gain`` and ``significance`` leave out ``bm25``.
    """
    pq = {name: per_query(ds.qrels, run, TABLE9_METRICS, ds.ignore) for name, run in runs.items()}
    mean = {name: average(vals, TABLE9_METRICS) for name, vals in pq.items()}
    table: dict[str, dict[str, dict[str, float]]] = {r: {} for r in TABLE9_RUNS}
    gain: dict[str, dict[str, dict[str, float | None]]] = {r: {} for r in TABLE9_RUNS[1:]}
    for w in windows:
        for r in TABLE9_RUNS:
            table[r][str(w)] = dict(mean[run_key(r, w)])
        for r in TABLE9_RUNS[1:]:
            gain[r][str(w)] = {m: _gain(table[r][str(w)][m], table["bm25"][str(w)][m]) for m in TABLE9_METRICS}
    out: dict[str, Any] = {"table": table, "gain": gain}
    if significance:
        from es_biomed.eval.significance import compare_to_baseline

        tests = compare_to_baseline(
            pq, baseline="bm25", metrics=TABLE9_METRICS, method=significance, n_resamples=n_resamples
        )
        out["significance"] = {r: {str(w): tests[run_key(r, w)] for w in windows} for r in TABLE9_RUNS[1:]}
    out["per_query"] = pq
    return out


def _fmt(v: float | None, digits: int) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:+.1f}%"


def table9_markdown(result: Mapping[str, Any], digits: int = 4, paper: bool = True) -> str:
    """Table 9 in the paper's layout (one row per top k), one table per metric, ours beside the paper's.

    Columns: the paper's ES and ES+BioMedBERT (with its gain), then our bm25, bm25+cosine and bm25+rerank,
    each re-sort with its gain over bm25 and the p-value of the paired test against bm25.
    """
    t, g, sig = result["table"], result["gain"], result.get("significance", {})
    lines: list[str] = []
    for m in TABLE9_METRICS:
        head = ["top k"]
        if paper:
            head += [f"paper ES {m}", f"paper ES+BioMedBERT {m}"]
        head += [f"bm25 {m}", f"bm25+cosine {m}", "gain", "p", f"bm25+rerank {m}", "gain", "p"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for w in t["bm25"]:
            row = [f"top {w}"]
            if paper:
                ref = PAPER_TABLE9.get(w)
                es = ref["ES"][m] if ref else None
                bio = ref["ES+BioMedBERT"][m] if ref else None
                row += [
                    paper_value(es) if es is not None else "–",
                    f"{paper_value(bio) if bio is not None else '–'} ({_pct(_gain(bio, es) if es and bio else None)})",
                ]
            row.append(_fmt(t["bm25"][w][m], digits))
            for r in ("bm25+cosine", "bm25+rerank"):
                row += [_fmt(t[r][w][m], digits), _pct(g[r][w][m]), format_p(sig.get(r, {}).get(w, {}).get(m))]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)
