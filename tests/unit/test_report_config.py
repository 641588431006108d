"""`es-biomed report` configs: every bad key, file or split is named before any work starts."""

from __future__ import annotations

import json
import re

import pytest

from es_biomed.eval.report_config import ReportConfigError, load_report_config, parse_report_config
from tests.conftest import REPO

SAMPLE = str(REPO / "data" / "scifact-sample")


def _squad(tmp_path):
    f = tmp_path / "b-1.json"
    f.write_text(json.dumps({"data": [{"title": "t", "paragraphs": []}]}))
    return f


def test_valid_config_expands_globs(tmp_path):
    f = _squad(tmp_path)
    cfg = parse_report_config(
        {
            "name": "t",
            "beir": [{"name": "s", "path": SAMPLE}],
            "bioasq": [{"name": "b", "files": [str(tmp_path / "b-*.json")], "windows": [20], "index": "pool"}],
            "jaccard": {"thresholds": [0.3]},
        }
    )
    assert cfg.bioasq[0].files == (str(f),)
    assert cfg.beir[0].split == "test" and cfg.significance == "randomization"
    assert str(REPO / "data" / "scifact-sample" / "qrels" / "test.tsv") in cfg.input_files()
    assert cfg.to_dict()["bioasq"][0]["windows"] == [20]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"beir": [{"name": "s", "path": SAMPLE, "splt": "test"}]}, "<config>.beir[0].splt: unknown key"),
        ({"beir": [{"name": "s", "path": SAMPLE}], "outptu": "x"}, "<config>.outptu: unknown key"),
        (
            {"beir": [{"name": "s", "path": SAMPLE, "split": "dev"}]},
            f"<config>.beir[0].split: split 'dev' is absent from the qrels of {SAMPLE} (qrels/dev.tsv); it has test",
        ),
        (
            {"beir": [{"name": "s", "path": "/no/such/dir"}]},
            "<config>.beir[0].path: BEIR directory '/no/such/dir' does not exist",
        ),
        (
            {"bioasq": [{"name": "b", "files": ["/no/such.json"]}]},
            "<config>.bioasq[0].files: file '/no/such.json' does not exist",
        ),
        (
            {"bioasq": [{"name": "b", "files": ["/no/such-*.json"]}]},
            "<config>.bioasq[0].files: '/no/such-*.json' matches no file",
        ),
        (
            {"beir": [{"name": "s", "path": SAMPLE, "distractors": ["/no/pool.jsonl"]}]},
            "<config>.beir[0].distractors: file '/no/pool.jsonl' does not exist",
        ),
        ({"beir": [{"name": "s", "path": SAMPLE}], "significance": "wilcoxon"}, "<config>.significance: expected"),
        ({}, "<config>: nothing to evaluate"),
        ({"beir": [{"name": "s", "path": SAMPLE}, {"name": "s", "path": SAMPLE}]}, "entry name 's' is used twice"),
        ({"beir": [{"name": "s", "path": SAMPLE}], "jaccard": {"bucket": []}}, "<config>.jaccard.bucket: unknown key"),
        ({"beir": [{"name": "s", "path": SAMPLE, "k": "100"}]}, "<config>.beir[0].k: expected int"),
    ],
)
def test_bad_configs_name_the_key_file_or_split(data, message):
    with pytest.raises(ReportConfigError, match=re.escape(message)):
        parse_report_config(data)


def test_load_yaml_and_errors(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(f"name: t\nbeir:\n  - {{name: s, path: {SAMPLE}}}\n")
    assert load_report_config(p).beir[0].path == SAMPLE
    with pytest.raises(ReportConfigError, match=re.escape("report config '/no/r.yaml' does not exist")):
        load_report_config("/no/r.yaml")
    p.write_text("beir: [\n")
    with pytest.raises(ReportConfigError, match=re.escape(f"{p}: malformed YAML")):
        load_report_config(p)
    p.write_text(f"beir:\n  - {{name: s, path: {SAMPLE}, colour: red}}\n")
    with pytest.raises(ReportConfigError, match=re.escape(f"{p}.beir[0].colour: unknown key")):
        load_report_config(p)


def test_shipped_configs_are_valid():
    cfg = load_report_config(REPO / "benchmarks" / "reports" / "sample.yaml")
    assert [b.name for b in cfg.beir] == ["scifact-sample"]
