"""NER / RE / BioASQ factoid metrics on hand-worked examples."""

from __future__ import annotations

import re

import pytest

from es_biomed.eval.task_metrics import bioasq_factoid_scores, ner_scores, normalize_answer, re_scores


def test_ner_entity_exact_match_by_hand():
    gold = [["B", "I", "O", "B", "O"], ["O", "B", "I", "I"], ["B", "O"]]
    pred = [["B", "I", "O", "O", "O"], ["O", "B", "I", "O"], ["B", "O"]]
    # gold entities: s0 [0-1], s0 [3], s1 [1-3], s2 [0]                  -> 4
    # pred entities: s0 [0-1] (hit), s1 [1-2] (wrong end: miss), s2 [0] (hit) -> 3, 2 correct
    # P = 2/3, R = 2/4, F1 = 2PR/(P+R) = (2/3)/(7/6) = 4/7
    out = ner_scores(gold, pred)
    assert out["precision"] == pytest.approx(2 / 3)
    assert out["recall"] == pytest.approx(1 / 2)
    assert out["f1"] == pytest.approx(4 / 7)
    assert (out["gold_entities"], out["pred_entities"]) == (4, 3)


def test_ner_same_span_in_different_sentences_is_not_a_match():
    # [0] in sentence 1 predicted, gold has [0] only in sentence 0: one miss, one false positive
    out = ner_scores([["B", "O"], ["O", "O"]], [["O", "O"], ["B", "O"]])
    assert (out["precision"], out["recall"], out["f1"]) == (0.0, 0.0, 0.0)


def test_ner_conlleval_i_after_o_opens_an_entity():
    # conlleval (BioBERT's scorer): an I after O starts an entity, so O I I and O B I are the same span [1-2]
    out = ner_scores([["O", "I", "I"]], [["O", "B", "I"]])
    assert (out["precision"], out["recall"], out["f1"]) == (1.0, 1.0, 1.0)


def test_ner_no_predictions_scores_zero():
    out = ner_scores([["B", "O"]], [["O", "O"]])
    assert (out["precision"], out["recall"], out["f1"], out["pred_entities"]) == (0.0, 0.0, 0.0, 0)


def test_ner_shape_mismatch_raises():
    with pytest.raises(ValueError, match=re.escape("sentence 1: gold has 2 tags but pred has 1")):
        ner_scores([["O"], ["B", "I"]], [["O"], ["B"]])
    with pytest.raises(ValueError, match=re.escape("gold has 1 sentences but pred has 2")):
        ner_scores([["O"]], [["O"], ["O"]])


def test_re_positive_class_by_hand():
    gold = [1, 1, 1, 0, 0, 0, 1, 0]
    pred = [1, 0, 1, 1, 0, 0, 0, 0]
    # TP = 2 (items 0, 2), FP = 1 (item 3), FN = 2 (items 1, 6); correct = items 0, 2, 4, 5, 7
    out = re_scores(gold, pred)
    assert out["precision"] == pytest.approx(2 / 3)
    assert out["recall"] == pytest.approx(2 / 4)
    assert out["f1"] == pytest.approx(4 / 7)
    assert out["accuracy"] == pytest.approx(5 / 8)


def test_re_no_positive_prediction_is_zero_not_an_error():
    out = re_scores([1, 0], [0, 0])
    assert (out["precision"], out["recall"], out["f1"], out["accuracy"]) == (0.0, 0.0, 0.0, 0.5)


def test_re_bad_labels_raise():
    with pytest.raises(ValueError, match=re.escape("pred labels must be 0 or 1, got [2]")):
        re_scores([1, 0], [2, 0])
    with pytest.raises(ValueError, match="gold has 2 labels but pred has 1"):
        re_scores([1, 0], [1])


def test_bioasq_strict_lenient_mrr_by_hand():
    gold = {
        "q1": ["EGFR", "epidermal growth factor receptor"],
        "q2": ["TP53"],
        "q3": ["BRCA1"],
        "q4": ["insulin"],
        "q5": ["IL-6"],
    }
    preds = {
        "q1": [" egfr ", "x"],  # rank 1 after normalisation
        "q2": ["p53", "Tp53", "x"],  # rank 2
        "q3": ["a", "b", "c", "d", "e", "BRCA1"],  # rank 6: outside the top 5
        # q4 missing: counts as wrong
        "q5": ["IL-6 protein", "IL 6"],  # exact match only: neither counts
        "q-extra": ["ignored"],  # not in gold: not scored
    }
    out = bioasq_factoid_scores(preds, gold)
    assert out["questions"] == 5
    assert out["strict_acc"] == pytest.approx(1 / 5)
    assert out["lenient_acc"] == pytest.approx(2 / 5)
    assert out["mrr"] == pytest.approx((1 + 1 / 2) / 5)


def test_bioasq_k_cutoff():
    gold = {"q": ["a"]}
    assert bioasq_factoid_scores({"q": ["x", "y", "a"]}, gold, k=2)["lenient_acc"] == 0.0
    assert bioasq_factoid_scores({"q": ["x", "y", "a"]}, gold, k=3)["mrr"] == pytest.approx(1 / 3)


def test_bioasq_invalid_gold_raises():
    with pytest.raises(ValueError, match="gold is empty"):
        bioasq_factoid_scores({}, {})
    with pytest.raises(ValueError, match="question 'q' has no gold answer"):
        bioasq_factoid_scores({}, {"q": ["  "]})


def test_normalize_answer():
    assert normalize_answer("  Bazex Syndrome\n") == "bazex syndrome"
