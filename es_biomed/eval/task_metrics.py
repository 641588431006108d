"""Metrics for the BioMedBERT paper's fine-tuning tasks: NER (Table 5), RE (Table 7) and BioASQ QA (Table 8).

* **NER**: entity-level exact match on BIO tags. An entity counts as correct only when its span (first and last
  token) and type both match a gold entity. Computed with ``seqeval`` in its default, conlleval-compatible mode
  (the evaluation BioBERT used: an ``I`` that follows ``O`` opens an entity). Plain ``B``/``I``/``O`` tags are
  one entity type.
* **RE**: precision, recall and F1 of the positive class (label 1) of a binary classifier, with scikit-learn.
* **BioASQ factoid QA** (BioASQ's official factoid measures): each question has a ranked list of up to 5
  candidate answers and a list of gold synonyms. A candidate matches when it equals a gold synonym after
  normalisation (lower-case, surrounding whitespace stripped: case-insensitive exact string match).

  - ``strict_acc``: share of questions whose top-1 candidate matches.
  - ``lenient_acc``: share of questions with a match among the top 5.
  - ``mrr``: mean over questions of ``1 / rank`` of the first match in the top 5 (0 when none).

  Every gold question counts: one without predictions scores 0.

References:
    Chakraborty et al., "BioMedBERT: A Pre-trained Biomedical Language Model for QA and IR", COLING 2020.
    Tsatsaronis et al., "An overview of the BIOASQ large-scale biomedical semantic indexing and question
    answering competition", BMC Bioinformatics 16:138 (2015) (factoid measures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from es_biomed.errors import require
from es_biomed.qa.answers import bioasq_normalize as normalize_answer

__all__ = ["BIOASQ_TOP_K", "bioasq_factoid_scores", "normalize_answer", "ner_scores", "re_scores"]

#: BioASQ factoid systems return at most this many ranked candidates per question.
BIOASQ_TOP_K = 5


def ner_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level exact-match precision, recall and F1 on BIO tags (micro-averaged over entities).

    Args:
        gold: Gold tags, one list per sentence (e.g. ``[["O", "B", "I"], ...]``).
        pred: Predicted tags, same shape as ``gold``.

    Returns:
        ``{"precision", "recall", "f1", "gold_entities", "pred_entities"}``.

    Raises:
        ValueError: the numbers of sentences, or of tokens in a sentence, differ.

    Example:
        >>> ner_scores([["B", "I", "O", "B"]], [["B", "I", "O", "O"]])
        {'precision': 1.0, 'recall': 0.5, 'f1': 0.6666666666666666, 'gold_entities': 2, 'pred_entities': 1}
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences but pred has {len(pred)}")
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: gold has {len(g)} tags but pred has {len(p)}")
    require("seqeval", "tf")
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.metrics.sequence_labeling import get_entities

    g, p = [list(t) for t in gold], [list(t) for t in pred]
    return {
        "precision": float(precision_score(g, p, zero_division=0)),
        "recall": float(recall_score(g, p, zero_division=0)),
        "f1": float(f1_score(g, p, zero_division=0)),
        "gold_entities": sum(len(get_entities(t)) for t in g),
        "pred_entities": sum(len(get_entities(t)) for t in p),
    }


def re_scores(gold: Sequence[int], pred: Sequence[int]) -> dict[str, float]:
    """Precision, recall and F1 of the positive class (1) for binary relation classification.

    Args:
        gold: Gold labels (0 or 1).
        pred: Predicted labels (0 or 1).

    Returns:
        ``{"precision", "recall", "f1", "accuracy"}``; a metric with a zero denominator is 0.0.

    Raises:
        ValueError: lengths differ or a label is not 0 or 1.

    Example:
        >>> re_scores([1, 1, 0, 0], [1, 0, 1, 0])
        {'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'accuracy': 0.5}
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} labels but pred has {len(pred)}")
    for name, labels in (("gold", gold), ("pred", pred)):
        bad = sorted({int(v) for v in labels} - {0, 1})
        if bad:
            raise ValueError(f"{name} labels must be 0 or 1, got {bad}")
    require("sklearn", "tf")
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    g, p = [int(v) for v in gold], [int(v) for v in pred]
    precision, recall, f1, _ = precision_recall_fscore_support(
        g, p, average="binary", pos_label=1, labels=[0, 1], zero_division=0
    )
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "accuracy": float(accuracy_score(g, p)) if g else 0.0,
    }


def bioasq_factoid_scores(
    predictions: Mapping[str, Sequence[str]], gold: Mapping[str, Sequence[str]], k: int = BIOASQ_TOP_K
) -> dict[str, float]:
    """BioASQ factoid strict accuracy, lenient accuracy and MRR.

    Args:
        predictions: Question id -> candidate answers, best first. Only the first ``k`` are read.
        gold: Question id -> gold answer synonyms. Defines the questions scored.
        k: Candidates considered for lenient accuracy and MRR (BioASQ: 5).

    Returns:
        ``{"strict_acc", "lenient_acc", "mrr", "questions"}``.

    Raises:
        ValueError: ``gold`` is empty, a question has no gold synonym, or ``k < 1``.

    Example:
        >>> bioasq_factoid_scores({"q1": ["EGFR", "KRAS"], "q2": ["x", "y", "TP53"]},
        ...                       {"q1": ["egfr"], "q2": ["p53", "tp53"]})
        {'strict_acc': 0.5, 'lenient_acc': 1.0, 'mrr': 0.6666666666666666, 'questions': 2}
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not gold:
        raise ValueError("gold is empty: no question to score")
    strict = lenient = rr = 0.0
    for qid, synonyms in gold.items():
        targets = {normalize_answer(s) for s in synonyms if normalize_answer(s)}
        if not targets:
            raise ValueError(f"question {qid!r} has no gold answer")
        ranked = [normalize_answer(c) for c in list(predictions.get(qid, ()))[:k]]
        rank = next((i + 1 for i, c in enumerate(ranked) if c in targets), None)
        if rank is not None:
            strict += rank == 1
            lenient += 1
            rr += 1.0 / rank
    n = len(gold)
    return {"strict_acc": strict / n, "lenient_acc": lenient / n, "mrr": rr / n, "questions": n}
