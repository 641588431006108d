"""Task heads on a tiny Keras BERT (2 layers, hidden 32) built here: shapes, learning, span decoding."""

from __future__ import annotations

import numpy as np
import pytest

from es_biomed.corpus.tasks import Answer, NerSentence, QaExample, ReExample
from es_biomed.train.tf.task_data import encode_ner, encode_re, encode_squad, iter_batches

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "brca", "##1", "gene", "breast", "cancer", "##s", "what"]
VOCAB += ["causes", "?", "@", "$", "is", "a", "the", "tp", "##53", "lung", "no", "and"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    return transformers.BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)


def tiny_bert(seed: int = 0):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    import transformers
    from transformers.modeling_tf_utils import keras

    keras.utils.set_random_seed(seed)
    config = transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return transformers.TFBertModel(config)


NER = [
    NerSentence(("BRCA1", "gene", "causes", "breast", "cancers"), ("B", "O", "O", "B", "I")),
    NerSentence(("TP53", "is", "a", "lung", "cancer", "gene"), ("B", "O", "O", "B", "I", "O")),
]
RE = [ReExample("@ gene $ causes breast cancers", 1), ReExample("no @ gene $ and lung cancer", 0)] * 2
QA = [
    QaExample("q_000", "q", "what causes breast cancers?", "BRCA1 gene causes breast cancers", (Answer("BRCA1", 0),)),
    QaExample("r_000", "r", "what is a lung cancer gene?", "TP53 is a lung cancer gene", (Answer("TP53", 0),)),
]


def _loss(model, feats):
    batch = next(iter_batches(feats, batch_size=len(feats)))
    return float(model.task_loss(batch, model(batch, training=False)))


@pytest.mark.parametrize("kind", ["token", "sequence", "span"])
def test_head_shapes_and_a_few_steps_lower_the_loss(tokenizer, kind):
    from es_biomed.train.tf.heads import TrainConfig, build_head, fit, predict

    if kind == "token":
        feats, num_labels = encode_ner(NER, tokenizer, max_length=16), 3
    elif kind == "sequence":
        feats, num_labels = encode_re(RE, tokenizer, max_length=16), 2
    else:
        feats, num_labels = encode_squad(QA, tokenizer, max_length=32), 2
    model = build_head(tiny_bert(), kind, num_labels=num_labels, seed=0)
    batch = next(iter_batches(feats, batch_size=len(feats)))
    logits = model(batch, training=False).numpy()
    seq = batch["input_ids"].shape[1]
    assert logits.shape == {"token": (2, seq, 3), "sequence": (4, 2), "span": (2, seq, 2)}[kind]

    before = _loss(model, feats)
    config = TrainConfig(epochs=15, batch_size=len(feats), learning_rate=1e-2, warmup_fraction=0, seed=0)
    report = fit(model, feats, config, compiled=False)  # eager: faster than tracing for 15 tiny steps
    after = _loss(model, feats)
    assert report.steps == 15 and report.examples == 15 * len(feats)
    assert after < 0.75 * before, (before, after, report.losses)

    out = predict(model, feats, batch_size=1, compiled=False)
    lengths = [len(x) for x in feats.columns["input_ids"]]
    if kind == "sequence":
        assert [o.shape for o in out] == [(2,)] * 4
    else:
        assert [o.shape[0] for o in out] == lengths
        # predict() on unpadded single features agrees with the padded batch forward pass
        np.testing.assert_allclose(out[0], model(batch, training=False).numpy()[0, : lengths[0]], atol=1e-4)


def test_span_head_masks_padding(tokenizer):
    from es_biomed.train.tf.heads import build_head

    feats = encode_squad(QA, tokenizer, max_length=32)
    model = build_head(tiny_bert(), "span")
    batch = next(iter_batches(feats, batch_size=2))
    logits = model(batch, training=False).numpy()
    pad = batch["attention_mask"] == 0
    assert pad.any() and np.all(logits[pad] == -1e4)


def test_build_head_rejects_bad_kind():
    from es_biomed.errors import EsBiomedError
    from es_biomed.train.tf.heads import build_head

    with pytest.raises(EsBiomedError, match="unknown head kind 'ner'"):
        build_head(tiny_bert(), "ner")  # type: ignore[arg-type]


def test_best_spans_by_hand():
    from es_biomed.qa.spans import best_spans

    start = np.array([9.0, 0.0, 3.0, 1.0, 0.0])  # position 0 is not allowed ([CLS])
    end = np.array([9.0, 0.0, 0.0, 2.0, 5.0])
    allowed = np.array([False, True, True, True, True])
    spans = best_spans(start, end, allowed, top_n=3, max_answer_length=3)
    # scores are start + end logits (minus constant log-normalisers); allowed spans of <= 3 tokens:
    # (2,4)=3+5=8, (3,4)=1+5=6, then a tie at 5 between (2,3)=3+2 and (4,4)=0+5: the earlier start wins
    assert [(s, e) for s, e, _ in spans] == [(2, 4), (3, 4), (2, 3)]
    ls = start - np.log(np.exp(start).sum())
    le = end - np.log(np.exp(end).sum())
    assert spans[0][2] == pytest.approx(ls[2] + le[4])
    # with max_answer_length=2 the (2, 4) span (3 tokens) is excluded
    assert best_spans(start, end, allowed, top_n=1, max_answer_length=2)[0][:2] == (3, 4)
    assert best_spans(start, end, np.zeros(5, bool)) == []
    # separate end mask: position 4 may not end an answer (mid-word), so (2, 3) wins
    no_end_4 = np.array([False, True, True, True, False])
    assert best_spans(start, end, allowed, no_end_4, top_n=1)[0][:2] == (2, 3)


def test_rank_answers_picks_exact_span_and_pools_contexts(tokenizer):
    from es_biomed.train.tf.heads import rank_answers

    qa = [
        QaExample(
            "q_000", "q", "what causes breast cancers?", "BRCA1 gene causes breast cancers", (Answer("BRCA1", 0),)
        ),
        QaExample("q_001", "q", "what causes breast cancers?", "the brca1 gene", (Answer("brca1", 4),)),
    ]
    feats = encode_squad(qa, tokenizer, max_length=32)
    logits = []
    for f in range(len(feats)):
        n = len(feats.columns["input_ids"][f])
        lg = np.zeros((n, 2))
        logits.append(lg)
    # context 0 tokens: [CLS] what causes breast cancer ##s ? [SEP] brca ##1 gene causes breast cancer ##s [SEP]
    logits[0][12, 0] = 8.0  # start at "breast"
    logits[0][14, 1] = 8.0  # end at "##s"      -> "breast cancers" (best)
    logits[0][8, 0] = 5.0  # start at "brca"
    logits[0][9, 1] = 5.0  # end at "##1"       -> "BRCA1"
    # context 1 tokens: ... [SEP] the brca ##1 gene [SEP]: "brca1" at 9-10
    logits[1][9, 0] = 3.0
    logits[1][10, 1] = 3.0
    ranked = rank_answers(qa, feats, logits, k=3)
    texts = [t for t, _ in ranked["q"]]
    # "brca1" (context 1) and "BRCA1" (context 0) merge under normalisation, keeping the better score
    assert texts[0] == "breast cancers"
    assert texts[1].lower() == "brca1" and sum(t.lower() == "brca1" for t in texts) == 1
    assert len(texts) == 3
    # spans never cut a word: every candidate is a run of whole words of its context
    words = set("BRCA1 gene causes breast cancers the brca1".split())
    assert all(set(t.split()) <= words for t in texts), texts
    scores = [s for _, s in ranked["q"]]
    assert scores == sorted(scores, reverse=True)
