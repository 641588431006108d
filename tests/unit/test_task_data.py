"""Task readers (NER/RE/SQuAD) on tiny files written here, WordPiece label alignment, windows and batching."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from es_biomed.corpus.tasks import (
    Answer,
    NerSentence,
    QaExample,
    ReExample,
    gold_answers,
    read_ner_tsv,
    read_re_tsv,
    read_squad,
    split_questions,
)
from es_biomed.errors import RecordError
from es_biomed.train.tf.task_data import IGNORE_INDEX, decode_ner, encode_ner, encode_re, encode_squad, iter_batches

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "brca", "##1", "gene", "breast", "cancer", "##s", "what"]
VOCAB += ["causes", "?", "@", "$", "is", "a", "the"]
ID = {t: i for i, t in enumerate(VOCAB)}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    return transformers.BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)


# -- NER -----------------------------------------------------------------------------------------------------------


def test_read_ner_sentences_and_lines(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_text("BRCA1\tB\ngene\tO\n\n\nbreast\tB\ncancers\tI\n")
    sents = read_ner_tsv(f)
    assert [(s.tokens, s.tags, s.line) for s in sents] == [
        (("BRCA1", "gene"), ("B", "O"), 1),
        (("breast", "cancers"), ("B", "I"), 5),
    ]


@pytest.mark.parametrize(
    ("text", "line", "field", "reason"),
    [
        ("a\tO\nb\tO\textra\n", 2, "(record)", "expected 'token<TAB>tag', got 3 field(s)"),
        ("a\tO\n\nb\tB-Disease\n", 3, "tag", "unknown tag 'B-Disease'; expected one of ['B', 'I', 'O']"),
        ("a\tO\n \tB\n", 2, "token", "empty token"),
        ("a O\n", 1, "(record)", "expected 'token<TAB>tag', got 1 field(s)"),
    ],
)
def test_read_ner_bad_input_names_file_line_field(tmp_path, text, line, field, reason):
    f = tmp_path / "bad.tsv"
    f.write_text(text)
    with pytest.raises(RecordError, match=re.escape(f"{f}:{line}: field {field!r}: {reason}")):
        read_ner_tsv(f)


def test_read_ner_not_utf8_names_line(tmp_path):
    f = tmp_path / "bad.tsv"
    f.write_bytes(b"a\tO\n\xff\tO\n")
    with pytest.raises(RecordError, match=re.escape(f"{f}:2: field '(record)': not valid UTF-8")):
        read_ner_tsv(f)


def test_wordpiece_alignment_first_subtoken_gets_the_label(tokenizer):
    sent = NerSentence(("BRCA1", "gene", "causes", "breast", "cancers"), ("B", "O", "O", "B", "I"))
    feats = encode_ner([sent], tokenizer, max_length=32)
    ids = feats.columns["input_ids"][0].tolist()
    pieces = ["[CLS]", "brca", "##1", "gene", "causes", "breast", "cancer", "##s", "[SEP]"]
    assert ids == [ID[p] for p in pieces]
    # B=0, I=1, O=2; continuation pieces (##1, ##s) and [CLS]/[SEP] are ignored
    assert feats.columns["labels"][0].tolist() == [
        IGNORE_INDEX,
        0,
        IGNORE_INDEX,
        2,
        2,
        0,
        1,
        IGNORE_INDEX,
        IGNORE_INDEX,
    ]
    assert feats.meta["word_positions"][0].tolist() == [1, 3, 4, 5, 6]


def test_long_sentence_is_chunked_and_decoded_back(tokenizer):
    sent = NerSentence(("BRCA1", "gene", "causes", "breast", "cancers"), ("B", "O", "O", "B", "I"))
    other = NerSentence(("gene",), ("O",))
    feats = encode_ner([sent, other], tokenizer, max_length=5)  # 3 pieces per chunk besides [CLS]/[SEP]
    chunks = [[VOCAB[i] for i in ids[1:-1]] for ids in feats.columns["input_ids"]]
    assert chunks == [["brca", "##1", "gene"], ["causes", "breast"], ["cancer", "##s"], ["gene"]]
    assert feats.example_index == [0, 0, 0, 1]
    assert feats.meta["word_start"] == [0, 2, 4, 0]
    # feeding the gold labels back as "predictions" must give the gold tags per word
    preds = [np.where(lab == IGNORE_INDEX, 2, lab) for lab in feats.columns["labels"]]
    assert decode_ner([sent, other], feats, preds) == [list(sent.tags), ["O"]]


# -- RE ------------------------------------------------------------------------------------------------------------


def test_read_re_train_without_header_and_test_with_header(tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text("@GENE$ causes @DISEASE$ .\t1\nno link between @GENE$ and @DISEASE$\t0\n")
    test = tmp_path / "test.tsv"
    test.write_text("index\tsentence\tlabel\n0\t@GENE$ is a @DISEASE$ gene\t1\n")
    assert [(e.sentence, e.label, e.line) for e in read_re_tsv(train)] == [
        ("@GENE$ causes @DISEASE$ .", 1, 1),
        ("no link between @GENE$ and @DISEASE$", 0, 2),
    ]
    assert [(e.sentence, e.label, e.line) for e in read_re_tsv(test)] == [("@GENE$ is a @DISEASE$ gene", 1, 2)]


@pytest.mark.parametrize(
    ("text", "line", "field", "reason"),
    [
        ("s one\t1\ns two\tyes\n", 2, "label", "expected 0 or 1, got 'yes'"),
        ("s one\t1\n\t0\n", 2, "sentence", "empty sentence"),
        ("index\tsentence\tlabel\n0\ts\t1\ns\t1\n", 3, "(record)", "expected 'index<TAB>sentence<TAB>label'"),
        ("s one\n", 1, "(record)", "expected 'sentence<TAB>label', got 1 field(s)"),
    ],
)
def test_read_re_bad_input_names_file_line_field(tmp_path, text, line, field, reason):
    f = tmp_path / "bad.tsv"
    f.write_text(text)
    with pytest.raises(RecordError, match=re.escape(f"{f}:{line}: field {field!r}: {reason}")):
        read_re_tsv(f)


def test_encode_re_truncates_and_keeps_label(tokenizer):
    feats = encode_re([ReExample("what causes breast cancers ?", 1), ReExample("gene", 0)], tokenizer, max_length=4)
    assert [VOCAB[i] for i in feats.columns["input_ids"][0]] == ["[CLS]", "what", "causes", "[SEP]"]
    assert [int(x[0]) for x in feats.columns["label"]] == [1, 0]
    assert feats.meta["truncated"] == [True, False]


# -- SQuAD / BioASQ -------------------------------------------------------------------------------------------------


def _squad(tmp_path, qas_answer_start=18):
    f = tmp_path / "squad.json"
    para = {
        "context": "BRCA1 gene causes breast cancers",
        "qas": [
            {
                "id": "Q1_000",
                "question": "What causes breast cancers?",
                "answers": [{"text": "breast cancers", "answer_start": qas_answer_start}],
            }
        ],
    }
    f.write_text(json.dumps({"version": "t", "data": [{"title": "t", "paragraphs": [para]}]}))
    return f


def test_read_squad_and_question_id(tmp_path):
    (ex,) = read_squad(_squad(tmp_path))
    assert (ex.id, ex.question_id, ex.answers) == ("Q1_000", "Q1", (Answer("breast cancers", 18),))


def test_read_squad_bad_answer_start_names_json_path(tmp_path):
    f = _squad(tmp_path, qas_answer_start=17)
    where = "data[0].paragraphs[0].qas[0].answers[0]"
    with pytest.raises(
        RecordError, match=re.escape(f"{f}:{where}: field 'answer_start': context[17:31] is not 'breast cancers'")
    ):
        read_squad(f)


def test_read_squad_malformed_json_names_line(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{"data": [\n  {"paragraphs": ]\n}')
    with pytest.raises(RecordError, match=re.escape(f"{f}:2: field '(record)': malformed JSON")):
        read_squad(f)


def test_encode_squad_labels_answer_tokens(tokenizer, tmp_path):
    (ex,) = read_squad(_squad(tmp_path))
    feats = encode_squad([ex], tokenizer, max_length=64)
    toks = [VOCAB[i] for i in feats.columns["input_ids"][0]]
    assert toks == ["[CLS]", "what", "causes", "breast", "cancer", "##s", "?", "[SEP]"] + [
        "brca", "##1", "gene", "causes", "breast", "cancer", "##s", "[SEP]"
    ]  # fmt: skip
    s, e = int(feats.columns["start_positions"][0][0]), int(feats.columns["end_positions"][0][0])
    assert (toks[s], toks[e], s, e) == ("breast", "##s", 12, 14)
    off = feats.meta["offsets"][0]
    assert ex.context[off[s, 0] : off[e, 1]] == "breast cancers"
    assert off[:8, 0].tolist() == [-1] * 8  # question and specials are not context
    assert feats.columns["token_type_ids"][0].tolist() == [0] * 8 + [1] * 8
    # context pieces brca ##1 gene causes breast cancer ##s: which begin and which end a word
    bounds = feats.meta["word_bounds"][0]
    assert bounds[8:15, 0].tolist() == [True, False, True, True, True, True, False]
    assert bounds[8:15, 1].tolist() == [False, True, True, True, True, False, True]
    assert not bounds[:8].any() and not bounds[15:].any()


def test_encode_squad_windows_label_cls_when_answer_is_outside(tokenizer, tmp_path):
    (ex,) = read_squad(_squad(tmp_path))
    # question "what causes breast cancers ?" = 6 pieces; max_length 12 leaves 3 context pieces per window
    feats = encode_squad([ex], tokenizer, max_length=12, doc_stride=1)
    windows = [[VOCAB[i] for i in ids[8:-1]] for ids in feats.columns["input_ids"]]
    assert windows == [["brca", "##1", "gene"], ["gene", "causes", "breast"], ["breast", "cancer", "##s"]]
    labels = [
        (int(a[0]), int(b[0]))
        for a, b in zip(feats.columns["start_positions"], feats.columns["end_positions"], strict=True)
    ]
    assert labels == [(0, 0), (0, 0), (8, 10)]  # only the last window holds the whole answer


def test_gold_answers_and_question_split_are_disjoint():
    examples = [
        QaExample(f"Q{i}_{j:03d}", f"Q{i}", f"question number {i}?", "ctx a", (Answer("a", 4),))
        for i in range(200)
        for j in range(3)
    ]
    train, dev = split_questions(examples)
    train_q, dev_q = {e.question_id for e in train}, {e.question_id for e in dev}
    assert not train_q & dev_q and len(train_q | dev_q) == 200
    assert 20 <= len(dev_q) <= 60  # expected 40 (20%)
    assert all(sum(e.question_id == q for e in dev) == 3 for q in dev_q)  # every context of a question moves
    assert split_questions(list(reversed(examples)))[1] == list(reversed(dev))  # order-independent
    assert gold_answers(examples[:3]) == {"Q0": ["a"]}


def test_iter_batches_pads_per_batch(tokenizer):
    sents = [NerSentence(("gene",), ("O",)), NerSentence(("BRCA1", "gene"), ("B", "O"))]
    feats = encode_ner(sents, tokenizer, max_length=16)
    (batch,) = list(iter_batches(feats, batch_size=2))
    assert batch["input_ids"].tolist() == [[2, 7, 3, 0, 0], [2, 5, 6, 7, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[-100, 2, -100, -100, -100], [-100, 0, -100, 2, -100]]
    re_feats = encode_re([ReExample("gene", 1), ReExample("what gene", 0)], tokenizer)
    (rb,) = list(iter_batches(re_feats, batch_size=4))
    assert rb["label"].tolist() == [1, 0] and rb["input_ids"].shape == (2, 4)
