"""The scale script at 10,000 documents (issue 23): generate a small corpus from the real texts (400 of them
embedded with the real encoder), build, search every mode, and check the ANN graph's recall against the exact
scan. The growth curve itself (10k to 1M) runs by hand: benchmarks/RESULTS.md gives the command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_scale_script_at_10k(tmp_path, shared_data):
    pytest.importorskip("usearch", reason="the ANN graph needs usearch (the ann extra)")
    gen = tmp_path / "gen"
    env_py = sys.executable
    subprocess.run(
        [env_py, str(REPO / "benchmarks" / "gen_corpus.py"), "--docs", "10000", "--real-limit", "400",
         "--out", str(gen), "--shared", str(shared_data)],
        check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    stats = json.loads((gen / "stats.json").read_text())
    assert stats["docs"] == 10000 and stats["real_docs"] == 400
    out, png = tmp_path / "scale.json", tmp_path / "scale.png"
    subprocess.run(
        [env_py, str(REPO / "benchmarks" / "bench_scale.py"), "--gen", str(gen), "--work", str(tmp_path / "work"),
         "--sizes", "10000", "--queries", "40", "--ann-from", "0", "--out", str(out), "--plot", str(png),
         "--shared", str(shared_data)],
        check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    row = json.loads(out.read_text())["sizes"][0]
    build, search = row["build"], row["search"]
    assert build["docs"] == 10000 and build["build_docs_per_s_stores"] > 0
    assert build["disk_mib"]["vectors_f32"] == pytest.approx(10000 * 384 * 4 / 2**20, rel=0.01)
    assert build["disk_mib"]["ann"] > 0  # the graph was built (--ann-from 0) ...
    assert search["vector_search"]["method"] == "exact"  # ... but auto stays exact below EXACT_BELOW_ROWS
    assert set(search["modes"]) == {"bm25", "rerank_w100", "dense", "hybrid", "dense_exact"}
    assert all(m["p50_ms"] > 0 for m in search["modes"].values())
    assert search["dense_recall_at_10_vs_exact"] >= 0.95
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "work" / "ix-10000").exists()  # removed after it was measured (no --keep)
