"""Answer normalization and merging (es_biomed.qa.answers)."""

from __future__ import annotations

import pytest

from es_biomed.qa import Answer, merge_answers, normalize_answer_text


def ans(text: str, score: float, doc: str = "d", start: int = 0) -> Answer:
    return Answer(text, score, doc, "T", 2020, f"... {text} ...", start, start + len(text), "abstract")


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("CRISPR-Cas", "crispr cas"),
        ("  crispr   cas. ", "crispr cas"),
        ("CRISPR/Cas", "crispr cas"),
        ("(Flumazenil)", "flumazenil"),
        ("ＢＲＣＡ１", "brca1"),  # full-width letters fold under NFKC
        ("5-HT", "5 ht"),
        ("...", ""),
    ],
)
def test_normalization_case_punctuation_whitespace(raw, norm):
    assert normalize_answer_text(raw) == norm


def test_normalization_keeps_distinct_words_distinct():
    assert normalize_answer_text("IL-6") != normalize_answer_text("IL6")
    assert normalize_answer_text("TP53") != normalize_answer_text("TP63")


def test_merge_keeps_best_occurrence_and_ranks_by_score():
    a = ans("CRISPR-Cas", -2.0, "d1", 10)
    b = ans("crispr cas", -0.5, "d2", 3)  # same answer, better: its evidence wins
    c = ans("Cas9", -1.0, "d3", 7)
    d = ans("CRISPR/Cas.", -3.0, "d4", 1)  # same again, worse
    merged = merge_answers([a, b, c, d])
    assert [(m.text, m.doc_id, m.score) for m in merged] == [("crispr cas", "d2", -0.5), ("Cas9", "d3", -1.0)]


def test_merge_ties_keep_first_seen_and_k_cuts():
    x, y, z = ans("x", -1.0), ans("y", -1.0), ans("z", -0.1)
    assert [m.text for m in merge_answers([x, y, z])] == ["z", "x", "y"]
    assert [m.text for m in merge_answers([x, y, z], k=2)] == ["z", "x"]
    # a later, better duplicate of x keeps x's first-seen slot among equal scores
    assert [m.text for m in merge_answers([x, y, ans("X", -1.0)])] == ["x", "y"]


def test_merge_drops_punctuation_only_answers():
    assert merge_answers([ans(").", 0.0), ans("gene", -5.0)]) == [ans("gene", -5.0)]


def test_to_dict_has_exactly_the_contract_keys():
    d = ans("CFTR", -0.25, "d9", 4).to_dict()
    assert d == {
        "text": "CFTR",
        "score": -0.25,
        "doc_id": "d9",
        "title": "T",
        "year": 2020,
        "sentence": "... CFTR ...",
        "start": 4,
        "end": 8,
        "field": "abstract",
    }
