"""Answers with their evidence, the normalization that decides when two answers are the same, and the merge.

Two answers are the same when their :func:`normalize_answer_text` forms are equal: Unicode NFKC, lower-case,
punctuation turned into spaces, whitespace collapsed (``"CRISPR-Cas"``, ``"crispr cas"`` and ``" CRISPR/Cas."``
are one answer). :func:`merge_answers` keeps, for each such answer, the occurrence with the best score (its text and
evidence; ties keep the first seen) and ranks the answers by score.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["bioasq_normalize", "Answer", "merge_answers", "normalize_answer_text"]


@dataclass(frozen=True)
class Answer:
    """One answer and where it was found.

    Attributes:
        text: The answer, exactly as it stands in the document (``document[field][start:end]``).
        score: ``log p_start + log p_end`` of the span in its window (the reader's log-probability) minus the
            retrieval prior ``rank_weight * ln(1 + rank)`` of its document (<= 0, higher is better).
        doc_id: The document it was found in.
        title: That document's title (``""`` if none).
        year: Its year (from ``year`` or the ``date`` prefix), or ``None``.
        sentence: The sentence of the field the answer stands in.
        start: Character offset of the answer in the field.
        end: Character offset just past it.
        field: The document field: ``"abstract"``, ``"body"`` or ``"title"``.
        sentence_start: Character offset of ``sentence`` in the field (so ``start - sentence_start`` places the
            answer inside it); not part of :meth:`to_dict`, whose keys are the nine above.
    """

    text: str
    score: float
    doc_id: str
    title: str
    year: int | None
    sentence: str
    start: int
    end: int
    field: str
    sentence_start: int | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the same keys as the attributes.

        Example:
            >>> Answer("CFTR", -0.5, "d1", "T", 2019, "CF is caused by CFTR.", 16, 20, "abstract").to_dict()["text"]
            'CFTR'
        """
        return {k: v for k, v in asdict(self).items() if k != "sentence_start"}


def bioasq_normalize(text: str) -> str:
    """BioASQ factoid normalisation, the one its official scores use: lower-case and strip surrounding whitespace.

    (Merging candidate answers uses the looser :func:`normalize_answer_text`.)

    Example:
        >>> bioasq_normalize("  Bazex Syndrome ")
        'bazex syndrome'
    """
    return text.strip().lower()


def normalize_answer_text(text: str) -> str:
    """The form under which answers merge (see the module docstring).

    Example:
        >>> normalize_answer_text("  CRISPR-Cas (type II). ")
        'crispr cas type ii'
    """
    folded = unicodedata.normalize("NFKC", text).lower()
    spaced = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in folded)
    return " ".join(spaced.split())


def merge_answers(answers: Iterable[Answer], k: int | None = None) -> list[Answer]:
    """Merge answers whose normalized text is equal, keeping each one's best-scored occurrence; rank by score.

    Answers that normalize to the empty string (pure punctuation) are dropped. Ties in score keep input order.

    Args:
        answers: Candidate answers, in any order.
        k: Keep the best ``k`` (``None``: all).

    Example:
        >>> a = Answer("CFTR", -1.0, "d1", "", None, "", 0, 4, "abstract")
        >>> b = Answer("cftr.", -0.2, "d2", "", None, "", 5, 10, "abstract")
        >>> [(x.text, x.doc_id) for x in merge_answers([a, b])]
        [('cftr.', 'd2')]
    """
    best: dict[str, tuple[int, Answer]] = {}
    for i, ans in enumerate(answers):
        key = normalize_answer_text(ans.text)
        if not key:
            continue
        if key not in best or ans.score > best[key][1].score:
            best[key] = (best[key][0] if key in best else i, ans)
    ranked = [a for _, a in sorted(best.values(), key=lambda t: (-t[1].score, t[0]))]
    return ranked if k is None else ranked[:k]
