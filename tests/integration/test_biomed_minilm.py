"""The shipped biomed-minilm encoder: loads by name, gives unit vectors, and on held-out BioASQ questions puts a
real context above the BM25 hard negative (cosines measured once with the shipped weights and pinned)."""

from __future__ import annotations

import numpy as np
import pytest

from es_biomed.corpus.bioasq import load_bioasq, load_bioasq_split, split_by_question
from es_biomed.encode import load_encoder
from es_biomed.models.catalog import resolve as resolve_model_path
from es_biomed.query.presets import default_plan
from es_biomed.train.tf.retrieval import build_bm25_index, mine_hard_negatives, read_training_meta

pytest.importorskip("torch")

# dev question -> (its first context, BM25's best non-relevant dev context,
#                  biomed-minilm cos(q, positive), cos(q, negative), all-MiniLM-L6-v2 cos(q, pos), cos(q, neg))
CASES = {
    "51588bb2d24251bc05000091": ("ctx-392236d991d61e8f", "ctx-6bd222db1a6c3963", 0.5739, 0.0810, 0.5417, 0.1911),
    "54cf7051f693c3b16b000013": ("ctx-183564364e4679ea", "ctx-5b7870e25b2be863", 0.6245, 0.1606, 0.4962, 0.2127),
    "550c3d45a103b78016000008": ("ctx-0d1ebafb707d8b89", "ctx-9ab4ca26182817cc", 0.5568, 0.2715, 0.4515, 0.3009),
}


@pytest.fixture(scope="module")
def dev(shared_data):
    files = [shared_data / "bioasq" / "BioASQ-train-factoid-7b.json"]
    _, dev_ids = split_by_question(load_bioasq(files, None).queries)
    return load_bioasq_split(files, dev_ids), load_bioasq_split(files, dev_ids, None)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("biomed-minilm")


def test_loads_by_name_with_metadata(encoder):
    assert encoder.name == "biomed-minilm"
    assert (encoder.dims, encoder.max_length, encoder.pooling) == (384, 256, "mean")
    assert next(encoder.model.parameters()).dtype.is_floating_point
    assert str(next(encoder.model.parameters()).dtype) == "torch.float32"  # stored fp16, loaded fp32
    path = resolve_model_path("biomed-minilm")
    assert (path / "NOTICE").is_file()
    meta = read_training_meta(path)
    assert meta["config"]["base_model"] == "all-MiniLM-L6-v2"
    assert meta["data"]["split"]["dev_question_ids_sha256"] == (
        "a93e7a0e2edd88a24b7a38c6e7e604c208d4d7f9bed03bdfcd59b014eafb8e95"
    )
    assert load_encoder("biomed-minilm-l6").fingerprint == encoder.fingerprint


def test_unit_vectors(encoder):
    vecs = encoder.encode(["BRCA1 and breast cancer", "Which gene is mutated in cystic fibrosis?"])
    assert vecs.shape == (2, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_dev_context_beats_bm25_hard_negative(dev, encoder, tmp_path):
    kept, every = dev
    assert set(CASES) <= set(kept.queries)
    index = build_bm25_index(kept.corpus.values(), tmp_path / "bm25")
    positives = {q: set(every.qrels[q]) for q in CASES}
    negs = mine_hard_negatives(index, {q: kept.queries[q] for q in CASES}, positives, default_plan(), n=1)
    base = load_encoder("all-MiniLM-L6-v2")
    for qid, (pos, neg, cos_pos, cos_neg, base_pos, base_neg) in CASES.items():
        assert sorted(kept.qrels[qid])[0] == pos
        assert negs[qid] == [neg]
        docs = [kept.corpus[pos].text, kept.corpus[neg].text]
        for enc, (want_pos, want_neg) in ((encoder, (cos_pos, cos_neg)), (base, (base_pos, base_neg))):
            q = enc.encode_queries([kept.queries[qid]])[0]
            got = enc.encode_documents(docs) @ q
            np.testing.assert_allclose(got, [want_pos, want_neg], atol=2e-3, err_msg=f"{enc.name} on {qid}")
        # the fine-tuned encoder separates the pair more than its base did
        assert cos_pos - cos_neg > base_pos - base_neg
