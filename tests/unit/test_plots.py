"""The report plots write real PNG files."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("matplotlib")

from es_biomed.corpus.types import Document, RetrievalSet  # noqa: E402
from es_biomed.eval.jaccard import jaccard_analysis  # noqa: E402
from es_biomed.eval.plots import plot_jaccard, plot_query_deltas  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path, min_height=200, min_width=400):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    import matplotlib.image

    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] >= min_height and img.shape[1] >= min_width


def _analysis(with_runs: bool = True) -> dict:
    ds = RetrievalSet(
        corpus={
            "d1": Document(id="d1", abstract="alpha beta gamma delta epsilon"),
            "d2": Document(id="d2", abstract="alpha"),
            "d3": Document(id="d3", abstract="kinase zeta eta"),
        },
        queries={"q1": "alpha beta gamma delta", "q2": "kinase inhibitor trial"},
        qrels={"q1": {"d2": 1}, "q2": {"d3": 1}},
        ignore={"q1": {"d1"}},
    )
    runs = {"bm25": {"q1": {"d2": 1.0}, "q2": {"d1": 2.0, "d3": 1.0}}, "bm25+rerank": {"q1": {"d2": 1.0}}}
    return jaccard_analysis(ds, runs if with_runs else None)


def test_plot_jaccard_writes_png(tmp_path):
    out = plot_jaccard({"train": _analysis(), "dev": _analysis(with_runs=False)}, tmp_path / "sub" / "jac.png")
    assert out == tmp_path / "sub" / "jac.png"
    # two rows of 4.2 in at 100 dpi
    _assert_png(out, min_height=700, min_width=1000)


def test_plot_jaccard_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=re.escape("analyses must hold at least one split")):
        plot_jaccard({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=re.escape("threshold must lie in [0, 1]; got 1.3")):
        plot_jaccard({"dev": _analysis()}, tmp_path / "x.png", threshold=1.3)


def test_plot_query_deltas_writes_png(tmp_path):
    base = {"q1": 0.5, "q2": 0.2, "q3": 0.7, "q4": 0.0}
    system = {"q1": 0.9, "q2": 0.2, "q3": 0.4, "q4": 0.1}
    out = plot_query_deltas(base, system, str(tmp_path / "a" / "b" / "deltas.png"))
    assert out == tmp_path / "a" / "b" / "deltas.png"
    _assert_png(out)


def test_plot_query_deltas_mismatched_qids(tmp_path):
    with pytest.raises(
        ValueError, match=re.escape("1 missing from system (e.g. q2); 2 missing from baseline (e.g. q3, q4)")
    ):
        plot_query_deltas({"q1": 0.1, "q2": 0.2}, {"q1": 0.3, "q3": 0.1, "q4": 0.0}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=re.escape("hold no qids")):
        plot_query_deltas({}, {}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
