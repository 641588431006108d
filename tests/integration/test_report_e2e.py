"""`es-biomed report` end to end with the real model: the shipped sample (BEIR) and one real BioASQ batch pooled
with the sample's abstracts; every output a reader opens (report.md, report.json, the plots, the TREC runs)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from es_biomed.cli import main
from es_biomed.eval.trec import read_run
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.precision]
PNG = b"\x89PNG\r\n\x1a\n"


def test_report_from_raw_corpora(tmp_path, shared_data):
    batch = shared_data / "bioasq" / "BioASQ-test-factoid-4b-1.json"
    cfg = tmp_path / "r.yaml"
    cfg.write_text(
        f"""
name: t
index_dir: {tmp_path / "ix"}
beir:
  - {{name: sample, path: {REPO / "data" / "scifact-sample"}}}
bioasq:
  - {{name: 4b-1, files: [{batch}], windows: [20, 50]}}
  - {{name: 4b-1-pool, files: [{batch}], windows: [20], distractors: [{REPO / "data" / "scifact-sample"}]}}
"""
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["report", str(cfg), "--output", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["beir"]["sample"]["runs"]["bm25"]["NDCG@10"] == pytest.approx(0.8379, abs=5e-4)
    assert set(rep["beir"]["sample"]["significance"]) == {"bm25+rerank", "dense", "hybrid"}
    t9 = rep["bioasq"]["4b-1"]
    assert set(t9["table"]) == {"bm25", "bm25+cosine", "bm25+rerank"} and set(t9["table"]["bm25"]) == {"20", "50"}
    assert 0.0 <= t9["significance"]["bm25+cosine"]["20"]["MRR@10"]["p_value"] <= 1.0
    pool = rep["bioasq"]["4b-1-pool"]["config"]
    assert pool["documents"] == 167 + 500 and pool["distractors"]["added"] == 500
    assert rep["bioasq"]["4b-1"]["jaccard"]["pairs"] == rep["bioasq"]["4b-1"]["config"]["stats"]["pairs_total"]
    assert str(batch) in rep["data_sha256"] and "es-biomed" in rep["versions"]
    for name in ("jaccard", "sample-delta", "4b-1-delta", "4b-1-pool-delta"):
        assert (out / rep["plots"][name]).read_bytes()[:8] == PNG, name
    md = (out / "report.md").read_text()
    assert "| top 20 | 0.172 | 0.253 (+47.1%) |" in md and "![Jaccard](plots/jaccard.png)" in md
    run = read_run(out / "runs" / "4b-1" / "bm25+cosine@20.trec")
    assert len(run) == t9["config"]["queries"] and all(len(docs) <= 20 for docs in run.values())


def test_bad_config_fails_before_any_work(tmp_path):
    cfg = tmp_path / "r.yaml"
    cfg.write_text(f"beir:\n  - {{name: s, path: {REPO / 'data' / 'scifact-sample'}, split: dev}}\n")
    res = CliRunner().invoke(main, ["report", str(cfg), "--output", str(tmp_path / "out")])
    assert res.exit_code == 1
    assert "beir[0].split: split 'dev' is absent from the qrels" in res.output
    assert not (tmp_path / "out").exists()
