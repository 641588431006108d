"""training/rescore_variants.py's normalized convex fusion (an issue 12 attempt): exact orders on a tiny case."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("rescore_variants", REPO / "training" / "rescore_variants.py")
rv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rv)

# BM25 top 4 of one query (d1 best), then d5 below the window; cosine + 1 prefers d4, then d3
FIRST = {"q": [("d1", 30.0), ("d2", 20.0), ("d3", 12.0), ("d4", 10.0), ("d5", 9.0)]}
COS = {"q": {"d1": 1.10, "d2": 1.20, "d3": 1.70, "d4": 1.90, "d5": 2.0}}


def test_normalized():
    x = np.array([30.0, 20.0, 10.0])
    assert rv._normalized(x, "minmax").tolist() == [1.0, 0.5, 0.0]
    assert rv._normalized(x, "z") == pytest.approx([1.2247449, 0.0, -1.2247449])
    # a flat window: no signal (Elasticsearch's minmax keeps the value, a constant that leaves the order alone)
    assert rv._normalized(np.array([3.0, 3.0]), "minmax").tolist() == [3.0, 3.0]
    assert rv._normalized(np.array([3.0, 3.0]), "z").tolist() == [0.0, 0.0]


def test_fused_orders():
    def order(window, alpha, norm="minmax", k=5):
        run = rv._fused(FIRST, COS, window, alpha, norm, k)["q"]
        return sorted(run, key=run.get, reverse=True)

    assert order(4, 1.0) == ["d1", "d2", "d3", "d4", "d5"]  # a = 1: BM25 alone
    assert order(4, 0.0) == ["d4", "d3", "d2", "d1", "d5"]  # a = 0: cosine alone; d5 stays below the window
    # a = 0.5, min-max over the window: bm25 (1, .5, .1, 0), cosine (0, .125, .75, 1) -> d1 .5, d2 .3125,
    # d3 .425, d4 .5; the tie keeps BM25's order (stable sort): d1 before d4
    assert order(4, 0.5) == ["d1", "d4", "d3", "d2", "d5"]
    assert order(2, 0.0) == ["d2", "d1", "d3", "d4", "d5"]  # only the top 2 are re-sorted
    assert order(4, 0.0, k=3) == ["d4", "d3", "d2"]
