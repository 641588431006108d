"""PNG plots for reports: the Jaccard debiasing (after the BioMedBERT paper's Figure 2) and per-query deltas.

matplotlib is an optional dependency (``pip install 'es-biomed[report]'``); it is imported lazily, on the Agg
backend, so that importing this module costs nothing and works headless.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

__all__ = ["plot_jaccard", "plot_query_deltas"]

_TIE = 1e-12


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'es-biomed[report]'") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, plt: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, format="png", dpi=100)
    finally:
        plt.close(fig)
    return out


def _removed_at(analysis: Mapping[str, Any], threshold: float) -> int | None:
    for key, row in analysis.get("removed", {}).items():
        if abs(float(key) - threshold) < 1e-9:
            return int(row["pairs"])
    return None


def plot_jaccard(
    analyses: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike[str],
    threshold: float = 0.30,
    runs: Sequence[str] = ("bm25", "bm25+rerank"),
) -> Path:
    """One row per split: the pair Jaccard histogram and the metric by Jaccard bucket.

    Left panel: histogram of the question–document Jaccard of every judged pair, with a dashed line at
    ``threshold`` and the number of pairs above it in the legend. Right panel: grouped bars of the analysis
    metric per bucket for each run of ``runs`` present in the analysis, with the number of queries per bucket
    (``n=``) under each group's label (bars of query counts when no run is present).

    Args:
        analyses: ``{split: jaccard_analysis(...)}``, e.g. ``{"train": ..., "dev": ...}``.
        path: Where to write the PNG.
        threshold: The removal threshold to draw, in [0, 1].
        runs: Run names to draw, in order; names missing from an analysis are left out.

    Returns:
        The path written.

    Raises:
        ValueError: When ``analyses`` is empty or ``threshold`` is outside [0, 1].
        ImportError: When matplotlib is not installed.
    """
    if not analyses:
        raise ValueError("analyses must hold at least one split")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1]; got {threshold!r}")
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(len(analyses), 2, figsize=(13, 4.2 * len(analyses)), squeeze=False)
    for (split, an), (left, right) in zip(analyses.items(), axes, strict=True):
        dist = an["distribution"]
        edges, counts = dist["edges"], dist["counts"]
        widths = [hi - lo for lo, hi in pairwise(edges)]
        left.bar(edges[:-1], counts, width=widths, align="edge", color="#4c72b0", edgecolor="white")
        removed = _removed_at(an, threshold)
        label = f"threshold J = {threshold:.2f}"
        if removed is not None:
            label += f": {removed} pair{'' if removed == 1 else 's'} above, removed"
        left.axvline(threshold, color="#c44e52", linestyle="--", linewidth=1.5, label=label)
        left.set_xlim(0.0, 1.0)
        left.set_title(f"{split}: question–document Jaccard ({an['pairs']} pairs)")
        left.set_xlabel("Jaccard overlap of token sets")
        left.set_ylabel("pairs")
        left.yaxis.set_major_locator(MaxNLocator(integer=True))
        left.legend(loc="upper right")

        buckets = an["by_bucket"]
        labels = list(buckets)
        present = [r for r in runs if any(r in row for row in buckets.values())]
        metric = an.get("metric", "metric")
        xs = range(len(labels))
        nq = [int(buckets[b]["queries"]) for b in labels]
        if present:
            width = 0.8 / len(present)
            for i, name in enumerate(present):
                vals = [buckets[b].get(name) for b in labels]
                heights = [v if v is not None else 0.0 for v in vals]
                offs = [x - 0.4 + width * (i + 0.5) for x in xs]
                right.bar(offs, heights, width=width, label=name)
            top = max([buckets[b].get(r) or 0.0 for b in labels for r in present] + [0.0])
            right.set_ylim(0.0, max(top * 1.3, 0.1))
            right.set_ylabel(f"mean {metric}")
            right.legend(loc="upper left", ncol=len(present), fontsize=9)
        else:
            right.bar(list(xs), nq, width=0.6, color="#8c8c8c")
            right.set_ylabel("queries")
            right.yaxis.set_major_locator(MaxNLocator(integer=True))
        right.set_xticks(list(xs))
        right.set_xticklabels([f"{b}\nn={n}" for b, n in zip(labels, nq, strict=True)], fontsize=8)
        right.set_xlabel("max Jaccard of the query's kept pairs")
        right.set_title(f"{split}: {metric} by Jaccard bucket")
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_query_deltas(
    baseline: Mapping[str, float],
    system: Mapping[str, float],
    path: str | os.PathLike[str],
    metric: str = "NDCG@10",
    label: str = "bm25+rerank − bm25",
) -> Path:
    """Per-query differences ``system - baseline``, sorted descending, with wins/ties/losses in the title.

    Args:
        baseline: ``{qid: value}`` of the baseline (e.g. ``per_query(...)[qid][metric]`` flattened).
        system: ``{qid: value}`` of the compared system, over the same qids.
        path: Where to write the PNG.
        metric: Metric name for the labels.
        label: What the difference is, for the title.

    Returns:
        The path written.

    Raises:
        ValueError: When the qid sets differ (a few missing qids are named) or are empty.
        ImportError: When matplotlib is not installed.
    """
    only_base = sorted(set(baseline) - set(system))
    only_sys = sorted(set(system) - set(baseline))
    if only_base or only_sys:
        parts = []
        if only_base:
            parts.append(f"{len(only_base)} missing from system (e.g. {', '.join(only_base[:5])})")
        if only_sys:
            parts.append(f"{len(only_sys)} missing from baseline (e.g. {', '.join(only_sys[:5])})")
        raise ValueError("baseline and system must cover the same qids: " + "; ".join(parts))
    if not baseline:
        raise ValueError("baseline and system hold no qids")
    deltas = sorted((float(system[q]) - float(baseline[q]) for q in baseline), reverse=True)
    wins = sum(d > _TIE for d in deltas)
    losses = sum(d < -_TIE for d in deltas)
    ties = len(deltas) - wins - losses
    mean = sum(deltas) / len(deltas)

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    xs = list(range(len(deltas)))
    colors = ["#55a868" if d > _TIE else "#c44e52" if d < -_TIE else "#8c8c8c" for d in deltas]
    ax.bar(xs, deltas, width=1.0, color=colors, linewidth=0)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.axhline(mean, color="#4c72b0", linestyle="--", linewidth=1.0, label=f"mean Δ = {mean:+.4f}")
    ax.set_xlim(-0.5, len(deltas) - 0.5)
    ax.set_title(f"{label}: per-query Δ {metric}\n{wins} wins / {ties} ties / {losses} losses (n={len(deltas)})")
    ax.set_xlabel("queries, sorted by Δ")
    ax.set_ylabel(f"Δ {metric}")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return _save(fig, plt, path)
