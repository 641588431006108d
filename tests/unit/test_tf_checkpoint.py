"""Google BERT checkpoints <-> Keras BERT, and BERT masking, on a tiny 2-layer model built here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

# es_biomed.train.tf before TensorFlow: it makes TF load RTLD_LOCAL, else a later `import triton` segfaults.
import es_biomed.train.tf  # noqa: F401

tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")

from es_biomed.errors import EsBiomedError, RecordError  # noqa: E402
from es_biomed.train.tf import CheckpointError, load_bert, save_bert, write_google_checkpoint  # noqa: E402
from es_biomed.train.tf.bert import google_name, make_tokenizer  # noqa: E402
from es_biomed.train.tf.mlm import transfer_encoder_weights  # noqa: E402
from es_biomed.train.tf.mlm_data import IGNORE_INDEX, MlmMasker, build_mlm_corpus, encode_documents, read_jsonl_texts  # noqa: E402

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a of in and to is with for by cell cells gene protein cancer tumor patient patients drug virus dna rna "
    "expression binding mouse mice risk blood heart brain liver lung kidney study trial dose effect "
    "##s ##ing ##ed ##ly ##ase ##in ##mab ##itis"
).split()
VOCAB = SPECIALS + WORDS  # 48 entries

GOOGLE_LAYER_NAMES = [
    "attention/output/LayerNorm/beta",
    "attention/output/LayerNorm/gamma",
    "attention/output/dense/bias",
    "attention/output/dense/kernel",
    "attention/self/key/bias",
    "attention/self/key/kernel",
    "attention/self/query/bias",
    "attention/self/query/kernel",
    "attention/self/value/bias",
    "attention/self/value/kernel",
    "intermediate/dense/bias",
    "intermediate/dense/kernel",
    "output/LayerNorm/beta",
    "output/LayerNorm/gamma",
    "output/dense/bias",
    "output/dense/kernel",
]
GOOGLE_EMBEDDINGS = [
    "bert/embeddings/LayerNorm/beta",
    "bert/embeddings/LayerNorm/gamma",
    "bert/embeddings/position_embeddings",
    "bert/embeddings/token_type_embeddings",
    "bert/embeddings/word_embeddings",
]
GOOGLE_ENCODER = [f"bert/encoder/layer_{i}/{n}" for i in range(2) for n in GOOGLE_LAYER_NAMES]
GOOGLE_POOLER = ["bert/pooler/dense/bias", "bert/pooler/dense/kernel"]
GOOGLE_MLM_HEAD = [
    "cls/predictions/output_bias",
    "cls/predictions/transform/LayerNorm/beta",
    "cls/predictions/transform/LayerNorm/gamma",
    "cls/predictions/transform/dense/bias",
    "cls/predictions/transform/dense/kernel",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    return make_tokenizer(vocab, do_lower_case=True, max_length=64)


def tiny_config() -> object:
    return transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )


def build(cls: type, seed: int) -> object:
    tf.random.set_seed(seed)
    model = cls(tiny_config())
    model(model.dummy_inputs, training=False)
    # Randomise biases and LayerNorm parameters too (they start at 0 / 1), so a mix-up between them shows.
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(w.numpy() + rng.normal(0.0, 0.05, w.shape).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def batch(tokenizer):
    enc = tokenizer(
        ["the cancer patients with tumor expression", "mice blood ##s binding dna and rna virus"],
        padding=True,
        return_tensors="np",
    )
    return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def checkpoint_variables(directory: Path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(directory / "bert_model.ckpt"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def rewrite_checkpoint(src: Path, dst: Path, prefix: str, tensors: dict[str, np.ndarray]) -> None:
    dst.mkdir()
    for name in ("bert_config.json", "vocab.txt"):
        (dst / name).write_bytes((src / name).read_bytes())
    tf.raw_ops.SaveV2(
        prefix=str(dst / prefix),
        tensor_names=list(tensors),
        shape_and_slices=[""] * len(tensors),
        tensors=[tf.constant(v) for v in tensors.values()],
    )


def test_google_names():
    assert google_name("tf_bert_model/bert/embeddings/word_embeddings/weight:0") == "bert/embeddings/word_embeddings"
    assert google_name("tf_bert_model/bert/embeddings/position_embeddings/embeddings:0") == (
        "bert/embeddings/position_embeddings"
    )
    assert google_name("tf_bert_model/bert/encoder/layer_._11/output/LayerNorm/gamma:0") == (
        "bert/encoder/layer_11/output/LayerNorm/gamma"
    )
    assert google_name("tf_bert_for_masked_lm/mlm___cls/predictions/bias:0") == "cls/predictions/output_bias"
    assert google_name("tf_bert_for_masked_lm/mlm___cls/predictions/transform/dense/kernel:0") == (
        "cls/predictions/transform/dense/kernel"
    )


def test_encoder_checkpoint_round_trip(tmp_path, tokenizer, batch):
    model = build(transformers.TFBertModel, seed=1)
    ckpt = write_google_checkpoint(model, tokenizer, tmp_path / "google")
    written = checkpoint_variables(ckpt)
    assert sorted(written) == sorted(GOOGLE_EMBEDDINGS + GOOGLE_ENCODER + GOOGLE_POOLER)
    assert written["bert/encoder/layer_1/intermediate/dense/kernel"].shape == (32, 37)
    assert json.loads((ckpt / "bert_config.json").read_text())["intermediate_size"] == 37
    assert (ckpt / "vocab.txt").read_text().split("\n")[:-1] == VOCAB

    loaded, tok = load_bert(ckpt)
    assert type(loaded).__name__ == "TFBertModel"
    assert tok.do_lower_case is True  # vocabulary has no capitalised pieces
    assert tok("the cancer")["input_ids"] == tokenizer("the cancer")["input_ids"]
    want, got = model(batch, training=False), loaded(batch, training=False)
    np.testing.assert_allclose(got.last_hidden_state.numpy(), want.last_hidden_state.numpy(), atol=1e-6)
    np.testing.assert_allclose(got.pooler_output.numpy(), want.pooler_output.numpy(), atol=1e-6)

    again = checkpoint_variables(write_google_checkpoint(loaded, tok, tmp_path / "again"))
    assert sorted(again) == sorted(written)
    for name, value in written.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)


def test_mlm_checkpoint_round_trip(tmp_path, tokenizer, batch):
    model = build(transformers.TFBertForMaskedLM, seed=2)
    ckpt = write_google_checkpoint(model, tokenizer, tmp_path / "google")
    written = checkpoint_variables(ckpt)
    assert sorted(written) == sorted(GOOGLE_EMBEDDINGS + GOOGLE_ENCODER + GOOGLE_MLM_HEAD)

    loaded, _ = load_bert(ckpt, for_mlm=True)
    np.testing.assert_allclose(
        loaded(batch, training=False).logits.numpy(), model(batch, training=False).logits.numpy(), atol=1e-6
    )
    # The same checkpoint as an encoder: no pooler in it, so the pooler keeps its initialisation.
    encoder, _ = load_bert(ckpt)
    np.testing.assert_allclose(
        encoder(batch, training=False).last_hidden_state.numpy(),
        model.bert(**batch, training=False).last_hidden_state.numpy(),
        atol=1e-6,
    )


def test_hf_directory_round_trip_keeps_mlm_head(tmp_path, tokenizer, batch):
    model = build(transformers.TFBertForMaskedLM, seed=3)
    out = save_bert(model, tokenizer, tmp_path / "hf")
    loaded, tok = load_bert(out, for_mlm=True)
    assert tok.model_max_length == 64
    np.testing.assert_allclose(
        loaded(batch, training=False).logits.numpy(), model(batch, training=False).logits.numpy(), atol=1e-6
    )
    with pytest.raises(EsBiomedError, match="already holds a model"):
        save_bert(model, tokenizer, out)


def test_latest_step_and_prefix_sources_and_extra_variables(tmp_path, tokenizer, batch):
    model = build(transformers.TFBertModel, seed=4)
    other = build(transformers.TFBertModel, seed=5)
    src = write_google_checkpoint(model, tokenizer, tmp_path / "src")
    old = write_google_checkpoint(other, tokenizer, tmp_path / "old")
    tensors = checkpoint_variables(src)
    # What a TPU pretraining run also saves: optimizer slots and the step counter. They are ignored.
    extras = {
        "global_step": np.array(1000, np.int64),
        "bert/embeddings/word_embeddings/adam_m": np.zeros((len(VOCAB), 32), np.float32),
    }
    run = tmp_path / "run"
    rewrite_checkpoint(src, run, "model.ckpt-1000", {**tensors, **extras})
    tf.raw_ops.SaveV2(
        prefix=str(run / "model.ckpt-200"),
        tensor_names=list(checkpoint_variables(old)),
        shape_and_slices=[""] * len(tensors),
        tensors=[tf.constant(v) for v in checkpoint_variables(old).values()],
    )
    want = model(batch, training=False).last_hidden_state.numpy()
    from_dir, _ = load_bert(run)  # the highest step wins
    np.testing.assert_allclose(from_dir(batch, training=False).last_hidden_state.numpy(), want, atol=1e-6)
    from_prefix, _ = load_bert(run / "model.ckpt-200")
    np.testing.assert_allclose(
        from_prefix(batch, training=False).last_hidden_state.numpy(),
        other(batch, training=False).last_hidden_state.numpy(),
        atol=1e-6,
    )


def test_missing_variable_is_named(tmp_path, tokenizer):
    src = write_google_checkpoint(build(transformers.TFBertModel, seed=6), tokenizer, tmp_path / "src")
    tensors = checkpoint_variables(src)
    del tensors["bert/encoder/layer_1/attention/self/value/kernel"]
    rewrite_checkpoint(src, tmp_path / "broken", "bert_model.ckpt", tensors)
    with pytest.raises(
        CheckpointError, match=re.escape("missing variable 'bert/encoder/layer_1/attention/self/value/kernel'")
    ):
        load_bert(tmp_path / "broken")


def test_misshaped_variable_is_named(tmp_path, tokenizer):
    src = write_google_checkpoint(build(transformers.TFBertModel, seed=7), tokenizer, tmp_path / "src")
    tensors = checkpoint_variables(src)
    tensors["bert/encoder/layer_0/intermediate/dense/bias"] = np.zeros(36, np.float32)
    rewrite_checkpoint(src, tmp_path / "broken", "bert_model.ckpt", tensors)
    with pytest.raises(CheckpointError) as excinfo:
        load_bert(tmp_path / "broken")
    assert "'bert/encoder/layer_0/intermediate/dense/bias' has shape [36], the model expects [37]" in str(
        excinfo.value
    )
    assert str(tmp_path / "broken" / "bert_model.ckpt") in str(excinfo.value)


def test_partial_mlm_head_is_an_error(tmp_path, tokenizer):
    src = write_google_checkpoint(build(transformers.TFBertForMaskedLM, seed=8), tokenizer, tmp_path / "src")
    tensors = checkpoint_variables(src)
    del tensors["cls/predictions/output_bias"]
    rewrite_checkpoint(src, tmp_path / "broken", "bert_model.ckpt", tensors)
    with pytest.raises(CheckpointError, match=re.escape("missing variable 'cls/predictions/output_bias'")):
        load_bert(tmp_path / "broken", for_mlm=True)


def test_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EsBiomedError, match=re.escape(f"{tmp_path / 'empty'} is not a BERT model")):
        load_bert(tmp_path / "empty")
    with pytest.raises(EsBiomedError, match="unknown BERT source 'no-such-model'"):
        load_bert("no-such-model")


def test_transfer_encoder_weights(tokenizer, batch):
    mlm = build(transformers.TFBertForMaskedLM, seed=9)
    encoder = build(transformers.TFBertModel, seed=10)
    pooler_before = encoder.bert.pooler.dense.kernel.numpy().copy()
    assert transfer_encoder_weights(mlm, encoder) == 5 + 2 * 16
    np.testing.assert_allclose(
        encoder(batch, training=False).last_hidden_state.numpy(),
        mlm.bert(**batch, training=False).last_hidden_state.numpy(),
        atol=1e-6,
    )
    np.testing.assert_array_equal(encoder.bert.pooler.dense.kernel.numpy(), pooler_before)


# -- masking -----------------------------------------------------------------------------------------------------


def word_units(tokens: list[str]) -> list[list[int]]:
    units: list[list[int]] = []
    for i, tok in enumerate(tokens):
        if tok in SPECIALS:
            continue
        if tok.startswith("##") and units and units[-1][-1] == i - 1:
            units[-1].append(i)
        else:
            units.append([i])
    return units


def test_whole_word_masking_fixed_seed(tokenizer):
    # 20 word pieces in 13 words, 6 of them multi-piece.
    text = "the cell ##s of patient ##s with tumor ##s and dna ##ase ##s binding ##ing virus in mice ##ly risk"
    ids = np.array([tokenizer.convert_tokens_to_ids(["[CLS]", *text.split(), "[SEP]", "[PAD]", "[PAD]"])])
    masker = MlmMasker(tokenizer, whole_word=True)
    assert [len(u) for u in masker.words(ids[0])] == [1, 2, 1, 2, 1, 2, 1, 3, 2, 1, 1, 2, 1]
    inputs, labels = masker(ids, np.random.default_rng(5))
    # Positions: [CLS]=0 the=1 cell=2 ##s=3 of=4 ... binding=14 ##ing=15 virus=16 in=17 ... risk=20 [SEP]=21.
    # round(0.15 * 20) = 3 pieces to predict. Seed 5 permutes the 13 words as [9, 1, 3, 12, ...]: word 9 ("virus",
    # 1 piece) then word 1 ("cell ##s", 2 pieces) make 3. The 80/10/10 draws for positions 16, 2, 3 are
    # 0.049 -> [MASK], 0.999 -> a random token (here "for"), then [MASK].
    masked = np.flatnonzero(labels[0] != IGNORE_INDEX).tolist()
    assert masked == [2, 3, 16]
    assert tokenizer.convert_ids_to_tokens(labels[0, masked].tolist()) == ["cell", "##s", "virus"]
    assert tokenizer.convert_ids_to_tokens(inputs[0, masked].tolist()) == ["for", "[MASK]", "[MASK]"]
    untouched = [i for i in range(ids.shape[1]) if i not in masked]
    assert inputs[0, untouched].tolist() == ids[0, untouched].tolist()


def test_whole_word_masking_never_splits_words_and_rates(tokenizer):
    rng = np.random.default_rng(123)
    pieces = np.array([tokenizer.convert_tokens_to_ids(w) for w in WORDS])
    n_rows, n_body = 400, 62
    body = rng.choice(pieces, size=(n_rows, n_body))
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids = np.concatenate([np.full((n_rows, 1), cls), body, np.full((n_rows, 1), sep)], axis=1).astype(np.int32)
    for whole_word in (True, False):
        masker = MlmMasker(tokenizer, whole_word=whole_word)
        inputs, labels = masker(ids, np.random.default_rng(7))
        chosen = labels != IGNORE_INDEX
        assert not chosen[:, 0].any() and not chosen[:, -1].any()  # never [CLS] / [SEP]
        rate = chosen.sum() / (n_rows * n_body)
        assert 0.14 <= rate <= 0.151, rate  # round(0.15 * 62) = 9 per row at most: 0.1452
        if not whole_word:
            assert (chosen.sum(axis=1) == 9).all()
        was_mask = inputs[chosen] == tokenizer.mask_token_id
        unchanged = inputs[chosen] == ids[chosen]
        assert 0.77 <= was_mask.mean() <= 0.83
        assert 0.08 <= unchanged.mean() <= 0.12
        assert (inputs[~chosen] == ids[~chosen]).all()
        if whole_word:
            for row in range(n_rows):
                tokens = tokenizer.convert_ids_to_tokens(ids[row].tolist())
                for unit in word_units(tokens):
                    flags = chosen[row, unit]
                    assert flags.all() or not flags.any(), (row, unit)


# -- corpus ------------------------------------------------------------------------------------------------------


def test_corpus_split_by_document_and_chunking(tmp_path, tokenizer):
    beir = tmp_path / "beir" / "corpus.jsonl"
    beir.parent.mkdir()
    docs = [{"_id": f"d{i}", "title": "cancer", "text": f"the tumor cell {i}"} for i in range(40)]
    docs.append({"_id": "dup", "title": "cancer", "text": "the  tumor cell 7"})  # d7's text, other spacing
    beir.write_text("".join(json.dumps(d) + "\n" for d in docs))
    stats = build_mlm_corpus([beir.parent], tmp_path / "mlm", heldout_fraction=0.2, seed=1)
    assert stats.duplicates_skipped == 1
    assert stats.train_docs + stats.heldout_docs == 40
    assert 2 <= stats.heldout_docs <= 16
    train = [json.loads(line)["id"] for line in Path(stats.train_path).read_text().splitlines()]
    held = [json.loads(line)["id"] for line in Path(stats.heldout_path).read_text().splitlines()]
    assert not set(train) & set(held)
    again = build_mlm_corpus([beir.parent], tmp_path / "mlm2", heldout_fraction=0.2, seed=1)
    assert Path(again.heldout_path).read_text() == Path(stats.heldout_path).read_text()
    assert read_jsonl_texts(stats.train_path)[0].startswith("cancer the tumor cell")

    ids = encode_documents(tokenizer, ["the tumor cell gene gene gene gene", "dna"], max_seq_length=5)
    tok = tokenizer.convert_ids_to_tokens
    assert [tok(row.tolist()) for row in ids] == [
        ["[CLS]", "the", "tumor", "cell", "[SEP]"],
        ["[CLS]", "gene", "gene", "gene", "[SEP]"],
        ["[CLS]", "gene", "[SEP]", "[PAD]", "[PAD]"],
        ["[CLS]", "dna", "[SEP]", "[PAD]", "[PAD]"],
    ]


def test_bad_corpus_line_is_named(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "abstract": "dna"}\n{"id": "b"}\n')
    with pytest.raises(RecordError, match=re.escape(f"{path}:2: field 'abstract'")):
        read_jsonl_texts(path)


def test_tiny_pretraining_run(tokenizer):
    from es_biomed.train.tf.mlm import MlmConfig, pretrain_mlm

    model = build(transformers.TFBertForMaskedLM, seed=11)
    texts = ["the cancer patient ##s with tumor expression", "mice blood binding dna and rna virus in the liver"] * 4
    ids = encode_documents(tokenizer, texts, max_seq_length=16)
    config = MlmConfig(batch_size=4, max_steps=8, learning_rate=5e-3, warmup_fraction=0.0, eval_batch_size=8)
    result = pretrain_mlm(model, tokenizer, ids, ids, config)
    assert (result.steps, result.train_examples, result.stopped_by) == (8, 32, "max_steps")
    # Texts of 7 and 10 pieces: round(0.15 * 7) = 1 and round(0.15 * 10) = 2 predictions, 4 copies of each.
    assert result.heldout_predictions == 4 * 1 + 4 * 2
    assert result.heldout_loss_after < result.heldout_loss_before


def test_mixed_precision_step_runs(tokenizer):
    """The GPU preset's float16 path (loss scaling) also runs, slowly, on a CPU."""
    from es_biomed.train.tf.mlm import PRESETS, MlmConfig, pretrain_mlm, set_mixed_precision

    assert PRESETS["gpu"].mixed_precision and PRESETS["gpu"].batch_size == 256
    set_mixed_precision(True)
    try:
        model = build(transformers.TFBertForMaskedLM, seed=12)
        assert model.bert.encoder.layer[0].attention.self_attention.query.compute_dtype == "float16"
        ids = encode_documents(tokenizer, ["the cancer patient ##s with tumor expression"] * 4, max_seq_length=16)
        config = MlmConfig(batch_size=4, max_steps=4, learning_rate=5e-3, warmup_fraction=0.0, mixed_precision=True)
        result = pretrain_mlm(model, tokenizer, ids, ids, config)
    finally:
        set_mixed_precision(False)
    assert result.steps == 4
    assert np.isfinite(result.heldout_loss_after) and result.heldout_loss_after < result.heldout_loss_before
