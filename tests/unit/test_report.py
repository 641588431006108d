from __future__ import annotations

import json

from es_biomed.eval.report import merge_run_record


def test_merge_run_record_keeps_other_runs_and_replaces_the_same_key(tmp_path):
    path = tmp_path / "results" / "ner.json"
    merge_run_record(path, "NCBI-disease", {"f1": 0.7})
    merge_run_record(path, "BC5CDR-chem", {"f1": 0.8})
    merge_run_record(path, "NCBI-disease", {"f1": 0.785})
    assert json.loads(path.read_text()) == {"runs": {"NCBI-disease": {"f1": 0.785}, "BC5CDR-chem": {"f1": 0.8}}}
