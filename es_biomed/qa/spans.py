"""Span decoding: the best answer spans of one window from a span head's start and end logits.

Shared by the runtime reader (:mod:`es_biomed.qa.reader`) and the TensorFlow trainer's evaluation
(:func:`~es_biomed.train.tf.heads.rank_answers`), so training and serving decode alike.
"""

from __future__ import annotations

import numpy as np

__all__ = ["best_spans"]


def best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    allowed: np.ndarray,
    allowed_end: np.ndarray | None = None,
    *,
    top_n: int = 20,
    max_answer_length: int = 30,
) -> list[tuple[int, int, float]]:
    """The best answer spans of one window: ``start <= end < start + max_answer_length``, both allowed.

    A span's score is ``log_softmax(start_logits)[start] + log_softmax(end_logits)[end]`` (log-probability of
    the span under the window's start and end distributions), so scores of different windows and contexts
    compare.

    Args:
        start_logits: ``[tokens]`` start logits.
        end_logits: ``[tokens]`` end logits.
        allowed: ``[tokens]`` booleans, True where an answer may start (and end, unless ``allowed_end``).
        allowed_end: ``[tokens]`` booleans, True where an answer may end; defaults to ``allowed``.
        top_n: Spans returned at most.
        max_answer_length: Longest span, in tokens.

    Returns:
        ``(start, end, score)`` token spans, best first (ties: earlier start, then shorter).

    Example:
        >>> best_spans(np.array([0., 5., 1., 0.]), np.array([0., 0., 4., 6.]), np.array([0, 1, 1, 1], bool),
        ...            top_n=2, max_answer_length=2)  # doctest: +ELLIPSIS
        [(1, 2, -2.16...), (2, 3, -4.16...)]
    """
    s = np.asarray(start_logits, np.float64)
    e = np.asarray(end_logits, np.float64)
    ls = s - (np.log(np.sum(np.exp(s - s.max()))) + s.max())
    le = e - (np.log(np.sum(np.exp(e - e.max()))) + e.max())
    n = len(s)
    ok_start = np.asarray(allowed, bool)
    ok_end = ok_start if allowed_end is None else np.asarray(allowed_end, bool)
    starts, ends = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    valid = ok_start[:, None] & ok_end[None, :] & (ends >= starts) & (ends - starts < max_answer_length)
    if not valid.any():
        return []
    scores = np.where(valid, ls[:, None] + le[None, :], -np.inf)
    cand = np.flatnonzero(valid.ravel())
    key = np.lexsort((ends.ravel()[cand] - starts.ravel()[cand], starts.ravel()[cand], -scores.ravel()[cand]))
    best = cand[key[:top_n]]
    return [(int(b // n), int(b % n), float(scores.ravel()[b])) for b in best]
