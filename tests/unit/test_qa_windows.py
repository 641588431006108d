"""Passage windows with character offsets, and the sentence evidence (es_biomed.qa.windows / sentences)."""

from __future__ import annotations

import pytest

from es_biomed.corpus.passages import PassageConfig
from es_biomed.qa.sentences import sentence_at, sentence_spans
from es_biomed.qa.windows import document_windows, field_windows, select_windows


def test_field_windows_overlap_and_offsets():
    text = "w0 w1  w2\nw3 w4 w5 w6"
    spans = field_windows(text, PassageConfig(max_words=3, overlap=1))
    # words 0-2, 2-4, 4-6: step 2, the last window ends at the last word
    assert [text[s:e] for s, e in spans] == ["w0 w1  w2", "w2\nw3 w4", "w4 w5 w6"]
    assert spans[0] == (0, 9)


def test_field_windows_short_and_blank_text():
    assert field_windows("one two", PassageConfig(max_words=5, overlap=2)) == [(0, 7)]
    assert field_windows("   ", PassageConfig()) == []
    # a window boundary exactly at the end: no empty trailing window
    assert len(field_windows("a b c d", PassageConfig(max_words=2, overlap=0))) == 2


def test_document_windows_are_exact_slices_of_their_field():
    src = {"title": "Title words", "abstract": "a b c d e", "body": "f g h"}
    wins = document_windows("doc", src, rank=3, config=PassageConfig(max_words=3, overlap=1))
    assert [(w.field, w.text) for w in wins] == [("abstract", "a b c"), ("abstract", "c d e"), ("body", "f g h")]
    for w in wins:
        assert src[w.field][w.start : w.end] == w.text and w.rank == 3 and w.doc_id == "doc"


def test_title_is_read_only_without_abstract_or_body():
    wins = document_windows("t", {"title": "Aspirin and stroke", "abstract": ""})
    assert [(w.field, w.start, w.end) for w in wins] == [("title", 0, 18)]
    assert document_windows("n", {}) == []


def test_select_windows_interleaves_documents_best_window_first():
    cfg = PassageConfig(max_words=2, overlap=0)
    src = {
        "a": {"abstract": "x y brca1 gene u v"},  # windows: "x y", "brca1 gene" (2 question words), "u v"
        "b": {"abstract": "brca1 p"},
        "c": {"abstract": "q r"},
    }
    wins = select_windows(["a", "b", "c", "missing"], src, 4, "Which gene is BRCA1?", cfg)
    assert [(w.doc_id, w.text) for w in wins] == [("a", "brca1 gene"), ("b", "brca1 p"), ("c", "q r"), ("a", "x y")]
    assert [w.rank for w in wins] == [0, 1, 2, 0]
    assert len(select_windows(["a", "b", "c"], src, 100, "", cfg)) == 5
    assert select_windows(["a"], src, 1, "", cfg)[0].text == "x y"  # no question: document order


SENTS = (
    "Ribosomopathies are rare (see Fig. 3). Mutations in RPS19, e.g. in Diamond-Blackfan anemia, are common! "
    "Smith J. et al. found 12.5 % of cases. Why? Unknown"
)


def test_sentence_spans_skip_abbreviations_initials_and_decimals():
    assert [SENTS[s:e] for s, e in sentence_spans(SENTS)] == [
        "Ribosomopathies are rare (see Fig. 3).",
        "Mutations in RPS19, e.g. in Diamond-Blackfan anemia, are common!",
        "Smith J. et al. found 12.5 % of cases.",
        "Why?",
        "Unknown",
    ]


def test_sentence_at_returns_the_sentence_holding_the_answer():
    start = SENTS.index("RPS19")
    s, e = sentence_at(SENTS, start, start + 5)
    assert SENTS[s:e] == "Mutations in RPS19, e.g. in Diamond-Blackfan anemia, are common!"
    # an answer crossing a boundary gets both sentences
    s, e = sentence_at(SENTS, SENTS.index("rare"), SENTS.index("Mutations") + 9)
    assert SENTS[s:e].startswith("Ribosomopathies") and SENTS[s:e].endswith("are common!")


def test_sentence_at_rejects_spans_outside_the_text():
    with pytest.raises(ValueError, match=r"span \[5, 3\)"):
        sentence_at("abc def", 5, 3)
    with pytest.raises(ValueError, match="not inside"):
        sentence_at("abc", 0, 4)
