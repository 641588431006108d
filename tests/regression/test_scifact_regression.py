"""Full SciFact regression: exact BM25 doc ids and scores (5 places) and the four NDCG@10s (4 places), read
from benchmarks/expected.json. Slow (indexes 5,183 abstracts with the real model): run with ``pytest -m slow``.
"""

from __future__ import annotations

import json

import pytest

from es_biomed.corpus.readers import load_beir
from es_biomed.eval.protocols import evaluate_beir
from es_biomed.query.presets import default_plan
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.integration]
EXPECTED = json.loads((REPO / "benchmarks" / "expected.json").read_text())["scifact-test"]


@pytest.fixture(scope="module")
def result(tmp_path_factory, shared_data, minilm):
    index = tmp_path_factory.mktemp("scifact") / "ix"
    res = evaluate_beir(shared_data / "scifact", index, minilm, default_plan(), split="test")
    return index, res


def test_bm25_exact_top3(result, shared_data):
    from es_biomed.backends.embedded.index import EmbeddedIndex

    index, _ = result
    idx = EmbeddedIndex(index)
    queries = load_beir(shared_data / "scifact", "test").queries
    for qid, expected in EXPECTED["bm25_top3"].items():
        hits = idx.search(default_plan(queries[qid], mode="bm25", k=3)).hits
        assert [[h.doc_id, round(h.score, 5)] for h in hits] == expected, qid


def test_metrics_match_recorded(result):
    _, res = result
    got = {run: {m: round(v, 4) for m, v in vals.items()} for run, vals in res["runs"].items()}
    assert got == EXPECTED["metrics"]
