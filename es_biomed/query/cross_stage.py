"""The arithmetic of the ``rerank_ce`` mode: BM25, the cosine rescore, then a cross-encoder re-sorts the top.

The stage that runs it against an engine is :func:`es_biomed.search.stages.cross_encoder_stage`; this module only
scores and orders.

Pipeline: the ``rerank`` mode's ranking (BM25 top ``window_size``, cosine rescore, see
:mod:`es_biomed.query.plan`) gives hits ``h_1 .. h_M`` with scores ``s_i``, best first. The cross-encoder scores
the query with the text of each of the first ``n = min(ce_window, M)`` hits (:func:`document_text`: title, ". ",
abstract), giving raw logits ``z_i``. Then (:func:`apply_cross_encoder`):

* ``c_i = max(z_i, 0) + min(exp(z_i), 1)``: the logit as Elasticsearch's ``text_similarity_reranker`` reports it
  (its ``normalizeScore``: negative logits land in ``(0, 1)``, the others in ``[1, inf)``; the order is the logit's);
* ``ce_weight == 1`` (the default): the score of ``h_i`` is ``c_i``, a pure cross-encoder sort;
* ``ce_weight = w < 1``: the score is ``w * mm(c)_i + (1 - w) * mm(s)_i``, where ``mm`` is min-max normalization over
  the ``n`` hits, ``(x_i - min x) / (max x - min x)``, or ``min x`` for every hit when ``max x - min x < 1e-6``,
  exactly as Elasticsearch's ``minmax`` normalizer in a ``linear`` retriever (which is what ``rerank_ce`` with
  ``w < 1`` compiles to). ``w == 0`` keeps the rescore order;
* the ``n`` hits are sorted by that score, ties in their previous order;
* hits below the window keep their previous order after them and score ``F - 1``, ``F - 2``, ... where ``F`` is the
  lowest score in the window, so a run (``{doc: score}``) sorts as the list does. Elasticsearch returns no hits below
  the window (``rank_window_size`` >= ``size`` is required there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from es_biomed.errors import PlanError

__all__ = [
    "CrossScorer",
    "MINMAX_EPSILON",
    "apply_cross_encoder",
    "document_text",
    "minmax_normalize",
    "rerank_score",
]

#: Elasticsearch's ``MinMaxScoreNormalizer.EPSILON``: below this spread every hit gets the minimum.
MINMAX_EPSILON = 1e-6


class CrossScorer(Protocol):
    """What the stage needs of a cross-encoder (:class:`~es_biomed.encode.cross_encoder.CrossEncoderScorer`)."""

    name: str

    def score(self, query: str, texts: Sequence[str], batch_size: int = ...) -> np.ndarray: ...


def rerank_score(logit: float) -> float:
    """A cross-encoder logit as Elasticsearch's ``text_similarity_reranker`` reports it:
    ``max(z, 0) + min(exp(z), 1)``.

    Example:
        >>> rerank_score(2.0), rerank_score(0.0), round(rerank_score(-1.0), 4)
        (3.0, 1.0, 0.3679)
    """
    return max(logit, 0.0) + min(math.exp(min(logit, 0.0)), 1.0)


def minmax_normalize(values: Sequence[float]) -> list[float]:
    """``(x - min) / (max - min)``; when ``max - min < 1e-6`` every value becomes ``min`` (Elasticsearch's
    ``minmax`` normalizer).

    Example:
        >>> minmax_normalize([3.0, 1.0, 2.0]), minmax_normalize([5.0, 5.0])
        ([1.0, 0.0, 0.5], [5.0, 5.0])
    """
    if not values:
        return []
    lo, hi = min(values), max(values)
    if abs(hi - lo) < MINMAX_EPSILON:
        return [lo] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


def _check(ce_window: object, ce_weight: object) -> None:
    if isinstance(ce_window, bool) or not isinstance(ce_window, int) or ce_window < 1:
        raise PlanError(f"ce_window must be a positive integer, got {ce_window!r}")
    if isinstance(ce_weight, bool) or not isinstance(ce_weight, (int, float)) or not 0.0 <= ce_weight <= 1.0:
        raise PlanError(f"ce_weight must be a number in [0, 1], got {ce_weight!r}")


def apply_cross_encoder(
    hits: Sequence[tuple[str, float]],
    logits: Sequence[float] | np.ndarray,
    ce_window: int,
    ce_weight: float = 1.0,
) -> list[tuple[str, float]]:
    """Re-sort the top ``ce_window`` of ``hits`` by the cross-encoder (the formula is in the module docstring).

    Args:
        hits: ``(doc_id, score)`` pairs, best first (the ``rerank`` mode's ranking).
        logits: The cross-encoder's raw logit for each of the first ``min(ce_window, len(hits))`` hits, in order.
        ce_window: How many of the first hits are re-sorted.
        ce_weight: Weight of the cross-encoder score in ``[0, 1]``; 1 sorts by it alone.

    Returns:
        All hits with their new scores, best first.

    Raises:
        PlanError: ``ce_window`` or ``ce_weight`` is out of range (the message names it).
        ValueError: ``logits`` does not hold one finite value per window hit.

    Example:
        >>> apply_cross_encoder([("a", 9.0), ("b", 8.0), ("c", 7.0)], [-1.0, 2.0], ce_window=2)
        [('b', 3.0), ('a', 0.36787944117144233), ('c', -0.6321205588285577)]
    """
    _check(ce_window, ce_weight)
    n = min(ce_window, len(hits))
    z = [float(x) for x in np.asarray(logits, dtype=np.float64).reshape(-1)]
    if len(z) != n:
        raise ValueError(f"logits: expected {n} (one per hit in the cross-encoder window), got {len(z)}")
    if not all(math.isfinite(x) for x in z):
        raise ValueError(f"logits: the cross-encoder returned a non-finite score: {z}")
    ce = [rerank_score(x) for x in z]
    if ce_weight == 1.0:
        final = ce
    else:
        ce_n, prev_n = minmax_normalize(ce), minmax_normalize([float(s) for _, s in hits[:n]])
        final = [ce_weight * c + (1.0 - ce_weight) * p for c, p in zip(ce_n, prev_n, strict=True)]
    order = sorted(range(n), key=lambda i: (-final[i], i))
    out = [(hits[i][0], final[i]) for i in order]
    floor = min(final) if final else 0.0
    out += [(doc_id, floor - j) for j, (doc_id, _) in enumerate(hits[n:], start=1)]
    return out


def document_text(source: Mapping[str, Any]) -> str:
    """The text a cross-encoder reads for a hit: ``title + ". " + abstract``, or the one of them that is not empty.

    Example:
        >>> document_text({"title": "Aspirin", "abstract": "It thins blood."}), document_text({"abstract": "x"})
        ('Aspirin. It thins blood.', 'x')
    """
    title = str(source.get("title") or "")
    abstract = str(source.get("abstract") or "")
    if title and abstract:
        return f"{title}. {abstract}"
    return title or abstract
