"""Contrastive retrieval training: the loss by hand, the split, BM25 hard-negative mining, a tiny BERT that learns,
and the metadata saved beside the weights."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from es_biomed.corpus.bioasq import split_by_question
from es_biomed.corpus.types import Document, RetrievalSet
from es_biomed.errors import EsBiomedError
from es_biomed.query.presets import default_plan
from es_biomed.train.tf.retrieval import (
    META_FILENAME,
    build_bm25_index,
    ids_sha256,
    merge_sets,
    mine_hard_negatives,
    read_training_meta,
    update_training_meta,
    write_training_meta,
)
from es_biomed.train.tf.retrieval_config import RetrievalTrainConfig
from es_biomed.train.tf.retrieval_data import TrainExample, batch_mask, build_examples, iter_batches
from es_biomed.train.tf.retrieval_objective import info_nce_loss

# -- loss ------------------------------------------------------------------------------------------------------


def test_info_nce_2x2_by_hand():
    # logits = 20 * sim: row 0 = [10, 2] (target 0), row 1 = [4, 8] (target 1)
    # -log softmax: row 0 = log(1 + e^(2-10)) = log(1 + e^-8); row 1 = log(1 + e^(4-8)) = log(1 + e^-4)
    expected = (math.log1p(math.exp(-8)) + math.log1p(math.exp(-4))) / 2
    loss = float(info_nce_loss(np.array([[0.5, 0.1], [0.2, 0.4]], dtype=np.float32), scale=20.0))
    assert loss == pytest.approx(expected, rel=1e-5)
    assert loss == pytest.approx(0.0092427, abs=1e-6)


def test_info_nce_mask_removes_a_column():
    # row 0 = [10, 2, 12]: column 2 (a hard negative) dominates -> log(1 + e^-8 + e^2)
    sim = np.array([[0.5, 0.1, 0.6], [0.2, 0.4, 0.0]], dtype=np.float32)
    row0 = math.log(1 + math.exp(-8) + math.exp(2))
    row1 = math.log(1 + math.exp(-4) + math.exp(-8))
    assert float(info_nce_loss(sim, 20.0)) == pytest.approx((row0 + row1) / 2, rel=1e-5)
    # masking column 2 out of row 0 (e.g. it is another positive of question 0) gives row 0 its 2x2 value
    mask = np.array([[True, True, False], [True, True, True]])
    masked = (math.log1p(math.exp(-8)) + row1) / 2
    assert float(info_nce_loss(sim, 20.0, mask)) == pytest.approx(masked, rel=1e-5)
    # the diagonal is always kept, even when the mask says otherwise
    assert float(info_nce_loss(sim, 20.0, np.array([[False, True, False], [True, True, True]]))) == pytest.approx(
        masked, rel=1e-5
    )


def test_batch_mask_hides_other_positives_of_the_question():
    batch = [
        TrainExample("q1", "Q1", "a", "A", ("n1",), ("N1",)),
        TrainExample("q1", "Q1", "b", "B", ("n1",), ("N1",)),  # same question again: "a" and "b" are both relevant
        TrainExample("q2", "Q2", "c", "C", ("a",), ("A",)),  # q2's hard negative is q1's positive
    ]
    mask = batch_mask(batch, {"q1": {"a", "b"}, "q2": {"c"}})
    # columns: a, b, c (positives), n1, n1, a (negatives)
    assert mask.tolist() == [
        [True, False, True, True, True, False],
        [False, True, True, True, True, False],
        [True, True, True, True, True, True],
    ]


# -- data ------------------------------------------------------------------------------------------------------


def test_split_by_question_is_deterministic_and_disjoint():
    qs = {f"q{i}": f"What is the role of gene {i} in disease?" for i in range(20)}
    train, dev = split_by_question(qs)
    assert dev == ["q0", "q11", "q16", "q6"]  # sha1 buckets below 0.2, measured once and pinned
    assert (train, dev) == split_by_question(dict(reversed(list(qs.items()))))  # order does not matter
    assert not set(train) & set(dev)
    assert set(train) | set(dev) == set(qs)
    # the same question under two ids (case and spacing differ) lands on one side
    twin = {**qs, "twin": "what is the ROLE of gene 0   in disease?"}
    assert "twin" in split_by_question(twin)[1]
    assert split_by_question(qs, 0.0) == (sorted(qs), [])
    assert split_by_question(qs, 1.0) == ([], sorted(qs))
    with pytest.raises(ValueError, match="dev_fraction"):
        split_by_question(qs, 1.5)


TOY = [
    Document(id="d1", abstract="aspirin reduces fever in children"),
    Document(id="d2", abstract="aspirin prevents heart attack and stroke"),
    Document(id="d3", abstract="fever after vaccination"),
    Document(id="d4", abstract="stroke rehabilitation outcomes"),
]


def test_mining_on_a_toy_index(tmp_path):
    index = build_bm25_index(TOY, tmp_path / "ix")
    # BM25 for "aspirin fever": d1 has both terms; d3 (3 tokens) outranks d2 (5 tokens) for one term of equal idf
    assert [h.doc_id for h in index.bm25(default_plan("aspirin fever", mode="bm25"), 10)] == ["d1", "d3", "d2"]
    queries = {"q1": "aspirin fever", "q2": "stroke"}
    positives = {"q1": {"d1"}, "q2": {"d4"}}
    assert mine_hard_negatives(index, queries, positives, default_plan(), n=2) == {"q1": ["d3", "d2"], "q2": ["d2"]}
    assert mine_hard_negatives(index, queries, positives, default_plan(), n=1) == {"q1": ["d3"], "q2": ["d2"]}
    assert mine_hard_negatives(index, queries, positives, default_plan(), n=1, skip=1) == {"q1": ["d2"], "q2": []}
    # a question whose every BM25 hit is relevant gets no negative, never a positive
    both = {"q1": {"d1", "d2", "d3"}, "q2": {"d4", "d2"}}
    assert mine_hard_negatives(index, queries, both, default_plan(), n=3) == {"q1": [], "q2": []}


def test_merge_and_build_examples():
    ds = RetrievalSet(
        corpus={d.id: d for d in TOY},
        queries={"q1": "aspirin fever", "q2": "stroke"},
        qrels={"q1": {"d1": 1, "d3": 0}, "q2": {"d4": 1}},
    )
    merged = merge_sets({"toy": ds})
    assert sorted(merged.queries) == ["toy:q1", "toy:q2"]
    assert merged.corpus["toy:d2"].source == "toy"
    negs = {"toy:q1": ["toy:d3", "toy:d2"], "toy:q2": ["toy:d2"]}
    ex = build_examples(merged, negs, exclude_docs={"toy:d3"}, n=1)
    assert [(e.qid, e.pos_id, e.neg_ids, e.group) for e in ex] == [
        ("toy:q1", "toy:d1", ("toy:d2",), "toy"),
        ("toy:q2", "toy:d4", ("toy:d2",), "toy"),
    ]
    assert ex[0].negatives == ("aspirin prevents heart attack and stroke",)
    with pytest.raises(EsBiomedError, match="not in the corpus"):
        build_examples(merged, {"toy:q1": ["toy:missing"]})


def test_iter_batches_seeded_and_one_group_per_batch():
    exs = [TrainExample(f"{g}:{i}", "", str(i), "", group=g) for g in ("a", "b") for i in range(5)]
    first = [[e.qid for e in b] for b in iter_batches(exs, 2, seed=3, epoch=0)]
    assert first == [[e.qid for e in b] for b in iter_batches(exs, 2, seed=3, epoch=0)]
    assert first != [[e.qid for e in b] for b in iter_batches(exs, 2, seed=3, epoch=1)]
    assert sorted(q for b in first for q in b) == sorted(e.qid for e in exs)
    assert all(len({q.split(":")[0] for q in b}) == 1 for b in first)
    assert sorted(len(b) for b in first) == [1, 1, 2, 2, 2, 2]


# -- training --------------------------------------------------------------------------------------------------

WORDS = (
    "aspirin fever heart stroke gene cancer insulin diabetes kidney liver lung brain what which causes treats".split()
)


def _tiny_bert(vocab_dir, dropout=0.0):
    """A 2-layer, hidden-32 BERT with seeded initial weights, and a WordPiece tokenizer over WORDS."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("tensorflow")
    from es_biomed.train.tf.bert import make_tokenizer

    vocab = vocab_dir / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = make_tokenizer(vocab, do_lower_case=True, max_length=16)
    config = transformers.BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = transformers.TFBertModel(config)
    model(model.dummy_inputs)
    return model, tokenizer


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return _tiny_bert(tmp_path_factory.mktemp("vocab"))


PAIRS = [
    ("what treats fever", "aspirin fever"),
    ("what causes stroke", "heart stroke"),
    ("which gene causes cancer", "gene cancer"),
    ("what treats diabetes", "insulin diabetes"),
    ("which causes kidney", "kidney liver"),
    ("what causes brain", "brain lung"),
]


def test_tiny_bert_trains_and_loss_falls(tiny_bert):
    import tensorflow as tf

    from es_biomed.train.tf.retrieval import train_retrieval
    from es_biomed.train.tf.retrieval_objective import embed

    model, tokenizer = tiny_bert
    pairs = PAIRS
    examples = [TrainExample(f"q{i}", q, f"d{i}", d) for i, (q, d) in enumerate(pairs)]
    positives = {f"q{i}": {f"d{i}"} for i in range(len(pairs))}

    def full_loss() -> float:
        def tok(texts):
            enc = tokenizer(texts, padding=True, return_tensors="np")
            return {k: tf.constant(enc[k], tf.int32) for k in ("input_ids", "attention_mask", "token_type_ids")}

        q, d = embed(model, tok([p[0] for p in pairs])), embed(model, tok([p[1] for p in pairs]))
        return float(info_nce_loss(tf.matmul(q, d, transpose_b=True)))

    before = full_loss()
    config = RetrievalTrainConfig(batch_size=6, epochs=12, learning_rate=5e-3, warmup_ratio=0.0, seed=1)
    result = train_retrieval(examples, positives, config, model=model, tokenizer=tokenizer)
    after = full_loss()
    assert result.steps == 12 and len(result.losses) == 12
    assert result.examples_seen == 72 and result.examples_per_second > 0
    assert after < before * 0.5, (before, after)
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3])


def test_training_is_seeded_and_repeatable(tmp_path):
    from es_biomed.train.tf.retrieval import train_retrieval

    # with dropout on, two runs from the same initial weights and seed give the same losses, bit for bit
    examples = [TrainExample(f"q{i}", q, f"d{i}", d) for i, (q, d) in enumerate(PAIRS)]
    positives = {f"q{i}": {f"d{i}"} for i in range(len(PAIRS))}
    config = RetrievalTrainConfig(batch_size=3, epochs=2, learning_rate=1e-3, seed=7)
    first, tokenizer = _tiny_bert(tmp_path, dropout=0.1)
    second, _ = _tiny_bert(tmp_path, dropout=0.1)
    second.set_weights(first.get_weights())  # same starting point (as two runs loading one checkpoint)
    runs = [train_retrieval(examples, positives, config, model=m, tokenizer=tokenizer).losses for m in (first, second)]
    assert len(runs[0]) == 4
    assert runs[0] == runs[1]
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), second.get_weights(), strict=True))


def test_train_needs_examples_and_both_model_parts():
    from es_biomed.train.tf.retrieval import train_retrieval

    with pytest.raises(EsBiomedError, match="no training examples"):
        train_retrieval([], {}, RetrievalTrainConfig())
    with pytest.raises(EsBiomedError, match="both model and tokenizer"):
        train_retrieval([TrainExample("q", "q", "d", "d")], {}, RetrievalTrainConfig(), model=object())


# -- metadata --------------------------------------------------------------------------------------------------


def test_training_meta_round_trip(tmp_path):
    config = RetrievalTrainConfig(batch_size=16, max_steps=5)
    meta = {
        "config": config.to_dict(),
        "seed": config.seed,
        "data": {"dev_question_ids_sha256": ids_sha256(["b", "a"])},
    }
    path = write_training_meta(tmp_path, meta)
    assert path.name == META_FILENAME
    back = read_training_meta(tmp_path)
    assert back == json.loads(json.dumps(meta))
    assert RetrievalTrainConfig.from_dict(back["config"]) == config
    assert back["data"]["dev_question_ids_sha256"] == ids_sha256(["a", "b", "a"])
    assert (
        ids_sha256(["b", "a"]) == "7e18f737311b2dc3b2f269dd78396b0351f14fb66efa879f768cb23181883c78"
    )  # sha256(b"a\nb")
    updated = update_training_meta(tmp_path, metrics={"MRR@10": 0.5}, data={"extra": 1})
    assert updated["metrics"] == {"MRR@10": 0.5}
    assert updated["data"] == {"dev_question_ids_sha256": ids_sha256(["a", "b"]), "extra": 1}
    assert read_training_meta(tmp_path) == updated
    (tmp_path / META_FILENAME).write_text("{not json")
    with pytest.raises(EsBiomedError, match="line 1: malformed JSON"):
        read_training_meta(tmp_path)
    with pytest.raises(EsBiomedError, match="no training metadata"):
        read_training_meta(tmp_path / "missing")
