"""The reader's windowing, span decoding and null rule, on a real WordPiece tokenizer with scripted logits.

The model is replaced by a function of the input ids (start logit 10 on one chosen piece, end logit 10 on another),
so the expected spans and scores are worked out by hand; the real model is exercised in tests/integration.
"""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest

from es_biomed.qa import ModelFilesError, QaParameterError, SpanReader
from es_biomed.qa.config import ReaderConfig

tokenizers = pytest.importorskip("tokenizers")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "brca", "##1", "gene", "breast", "cancer", "##s", "what"]
VOCAB += ["causes", "?", "is", "a", "the", "tp", "##53", "lung", ".", "-", "cas"]


def make_model_dir(tmp_path, config: ReaderConfig):
    tok = tokenizers.BertWordPieceTokenizer({t: i for i, t in enumerate(VOCAB)}, lowercase=True)
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "qa_config.json").write_text(json.dumps(config.to_dict()))
    return tmp_path


class Scripted:
    """Start logit ``10`` on the piece ``start``, end logit ``10`` on ``end``; ``cls`` on [CLS]; 0 elsewhere."""

    def __init__(self, start: str, end: str, cls: float = 0.0) -> None:
        self.start, self.end, self.cls = VOCAB.index(start), VOCAB.index(end), cls
        self.calls: list[tuple[int, int]] = []

    def __call__(self, feeds):
        ids = feeds["input_ids"]
        self.calls.append(ids.shape)
        assert feeds["attention_mask"].dtype == np.int64
        start = np.where(ids == self.start, 10.0, 0.0)
        end = np.where(ids == self.end, 10.0, 0.0)
        start[:, 0] = end[:, 0] = self.cls
        pad = feeds["attention_mask"] == 0
        start[pad] = end[pad] = -1e4
        return start.astype(np.float32), end.astype(np.float32)


@pytest.fixture
def reader_for(tmp_path, monkeypatch):
    def build(script: Scripted, config: ReaderConfig | None = None) -> SpanReader:
        monkeypatch.setattr(SpanReader, "_make_runner", lambda self, runtime: ("scripted", script))
        return SpanReader(make_model_dir(tmp_path, config or ReaderConfig(max_length=64)), name="toy", batch_size=2)

    return build


def logp(n: int) -> float:
    """log-softmax of the one logit 10 among n positions whose others are 0."""
    return 10.0 - math.log(math.exp(10.0) + (n - 1))


def test_span_offsets_point_into_the_passage_and_keep_its_case(reader_for):
    reader = reader_for(Scripted("brca", "##1"))
    ctx = "The BRCA1 gene causes breast cancers."
    (spans,) = reader.read("what causes breast cancers?", [ctx])
    best = spans[0]
    assert ctx[best.start : best.end] == "BRCA1"
    # [CLS] what causes breast cancer ##s ? [SEP] the brca ##1 gene causes breast cancer ##s . [SEP]: 18 pieces
    assert best.score == pytest.approx(2 * logp(18))
    assert best.null_score == pytest.approx(2 * (0.0 - math.log(math.exp(10.0) + 17)))


def test_spans_start_and_end_on_word_boundaries(reader_for):
    # the start logit peaks on "##1", inside the word BRCA1: no span may start there
    reader = reader_for(Scripted("##1", "gene"))
    ctx = "BRCA1 gene"
    (spans,) = reader.read("what gene?", [ctx])
    assert {ctx[s.start : s.end] for s in spans} == {"BRCA1 gene", "gene", "BRCA1"}
    # start scores are equal over the allowed starts: the tie goes to the earlier start
    assert ctx[spans[0].start : spans[0].end] == "BRCA1 gene"
    assert spans[0].score == spans[1].score > spans[2].score


def test_max_answer_length_in_pieces(reader_for):
    reader = reader_for(Scripted("the", "gene"))
    ctx = "the brca1 gene"  # the | brca ##1 | gene: 4 pieces from "the" to "gene"
    long = reader.read("what?", [ctx], max_answer_length=4)[0]
    short = reader.read("what?", [ctx], max_answer_length=3)[0]
    assert ctx[long[0].start : long[0].end] == "the brca1 gene"
    assert all(s.end - s.start < len(ctx) for s in short)
    with pytest.raises(QaParameterError, match="max_answer_length"):
        reader.read("what?", [ctx], max_answer_length=0)


def test_null_rule_drops_spans_of_a_no_answer_window(reader_for):
    ctx = "The BRCA1 gene causes breast cancers."
    confident_null = reader_for(Scripted("brca", "##1", cls=30.0))
    assert confident_null.read("what?", [ctx]) == [[]]
    kept = confident_null.read("what?", [ctx], null_threshold=None)[0]
    assert ctx[kept[0].start : kept[0].end] == "BRCA1" and kept[0].null_score > kept[0].score
    # with a lower threshold the same span passes
    assert confident_null.read("what?", [ctx], null_threshold=-1000.0)[0][0] == kept[0]


def test_long_passage_is_read_in_overlapping_token_windows(reader_for):
    script = Scripted("tp", "##53")
    reader = reader_for(script, ReaderConfig(max_length=16, doc_stride=4, max_query_length=4))
    filler = "the gene is a gene . " * 4  # 24 pieces before TP53
    ctx = filler + "TP53 is a lung cancer gene."
    windows = reader.windows("what gene?", [ctx])
    room = 16 - 3 - 3  # question "what gene ?" is 3 pieces
    assert all(len(ids) <= 16 for ids, *_ in windows)
    assert len(windows) > 1 and {pi for _, pi, *_ in windows} == {0}
    # consecutive windows advance by room - doc_stride pieces
    firsts = [int(offs[5, 0]) for _, _, offs, _, _ in windows]  # char offset of each window's first passage piece
    assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)
    (spans,) = reader.read("what gene?", [ctx])
    assert ctx[spans[0].start : spans[0].end] == "TP53"
    # TP53 sits in two overlapping windows: listed once, with the better score
    assert sum(1 for s in spans if ctx[s.start : s.end] == "TP53") == 1
    assert room == 10


def test_several_passages_batched_by_length(reader_for):
    script = Scripted("cas", "cas")
    reader = reader_for(script)
    ctxs = ["cas", "the gene is cas and the lung gene", "no match here", "cas gene"]
    out = reader.read("what?", ctxs)
    assert [[c[s.start : s.end] for s in sp][:1] for c, sp in zip(ctxs, out, strict=True)][0] == ["cas"]
    assert ctxs[1][out[1][0].start : out[1][0].end] == "cas"
    assert len(out) == 4 and len(script.calls) == 2  # batch_size 2
    assert reader.read("what?", []) == []


def test_bad_parameters_and_files(tmp_path, reader_for):
    reader = reader_for(Scripted("cas", "cas"))
    with pytest.raises(QaParameterError, match="question: must be a non-empty string") as info:
        reader.read("  ", ["cas"])
    assert info.value.param == "question"
    with pytest.raises(QaParameterError, match="top_n"):
        reader.read("q", ["cas"], top_n=0)
    with pytest.raises(QaParameterError, match="runtime"):
        SpanReader(tmp_path, runtime="tpu")  # type: ignore[arg-type]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFilesError, match=r"config\.json is missing"):
        SpanReader(empty)
    (empty / "config.json").write_text("{}")
    (empty / "tokenizer.json").write_text("not a tokenizer")
    with pytest.raises(ModelFilesError, match="not a tokenizers file"):
        SpanReader(empty)


def test_errors_pickle_and_are_builtin_errors():
    err = pickle.loads(pickle.dumps(QaParameterError("k", "must be a positive integer, got 0")))
    assert isinstance(err, ValueError) and err.param == "k" and str(err) == "k: must be a positive integer, got 0"
    assert issubclass(ModelFilesError, FileNotFoundError)
