"""From a pair file to trainer datasets: pick kinds, sample a budget, choose negatives (all seeded)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from es_biomed.errors import EsBiomedError
from es_biomed.train.data.pairs import Pair, read_pairs

__all__ = ["Selection", "select_pairs", "pair_columns"]


@dataclass(frozen=True)
class Selection:
    """Which pairs of a dataset to train on.

    Attributes:
        budget: ``{kind: max pairs}``; a kind missing from it is not used, ``None`` keeps all of that kind.
        negatives: Hard negatives per pair (pairs with fewer are skipped).
        seed: Draws the sample and, where a pair has more negatives than needed, which ones.
    """

    budget: Mapping[str, int | None]
    negatives: int = 1
    seed: int = 42


def select_pairs(path: str | Path, selection: Selection) -> tuple[list[Pair], dict[str, Any]]:
    """Read ``path`` (validated by :func:`~es_biomed.train.data.pairs.read_pairs`) and apply ``selection``.

    Returns:
        ``(pairs with exactly selection.negatives negatives each, counts per source and kind)``.
    """
    rng = random.Random(selection.seed)
    by_kind: dict[str, list[Pair]] = {}
    for p in read_pairs(path):
        if p.kind in selection.budget and len(p.negatives) >= selection.negatives:
            by_kind.setdefault(p.kind, []).append(p)
    chosen: list[Pair] = []
    for kind in sorted(by_kind):
        items = by_kind[kind]
        cap = selection.budget[kind]
        if cap is not None and len(items) > cap:
            items = [items[i] for i in sorted(rng.sample(range(len(items)), cap))]
        for p in items:
            negs = p.negatives
            if len(negs) > selection.negatives:
                negs = tuple(negs[i] for i in sorted(rng.sample(range(len(negs)), selection.negatives)))
            chosen.append(Pair(p.id, p.source, p.kind, p.qid, p.query, p.pos_id, p.positive, negs))
    if not chosen:
        raise EsBiomedError(
            f"{path}: no pair of kinds {sorted(selection.budget)} with {selection.negatives} negatives"
        )
    counts: dict[str, dict[str, int]] = {}
    for p in chosen:
        counts.setdefault(p.source, {}).setdefault(p.kind, 0)
        counts[p.source][p.kind] += 1
    return chosen, counts


def pair_columns(pairs: list[Pair], negatives: int) -> dict[str, list[str]]:
    """sentence-transformers' column layout: ``anchor``, ``positive``, ``negative_1`` ... ``negative_n``."""
    cols: dict[str, list[str]] = {"anchor": [p.query for p in pairs], "positive": [p.positive for p in pairs]}
    for i in range(negatives):
        cols[f"negative_{i + 1}"] = [p.negatives[i].text for p in pairs]
    return cols
