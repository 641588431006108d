"""Stages the :class:`~es_biomed.search.Searcher` runs around an engine's own search.

* :func:`cross_encoder_stage`: the ``rerank_ce`` mode on an engine that cannot run a cross-encoder itself (the
  embedded engine): the engine's ``rerank`` ranking, then the cross-encoder re-sorts its top ``ce_window`` with the
  arithmetic of :mod:`es_biomed.query.cross_stage` (Elasticsearch runs the same stage in the cluster, as its
  ``text_similarity_reranker`` retriever).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from es_biomed.errors import PlanError
from es_biomed.query.cross_stage import CrossScorer, apply_cross_encoder, document_text
from es_biomed.query.plan import SearchPlan
from es_biomed.query.results import Hit, SearchResults

__all__ = ["cross_encoder_stage"]


def cross_encoder_stage(
    engine: Any,
    plan: SearchPlan,
    query_vector: np.ndarray | None,
    scorer: CrossScorer | None,
    with_sources: bool = False,
    batch_size: int = 32,
) -> SearchResults:
    """Execute a ``rerank_ce`` plan: ``engine`` runs the ``rerank`` mode, ``scorer`` re-sorts its top ``ce_window``.

    Args:
        engine: An :class:`~es_biomed.backends.embedded.EmbeddedIndex` (anything with ``search(plan, vector)`` and
            ``get(doc_ids)`` returning stored ``title`` / ``abstract``).
        plan: A ``rerank_ce`` plan.
        query_vector: The query embedding (the cosine rescore needs it).
        scorer: The cross-encoder (``score(query, texts, batch_size=...)`` -> raw logits).
        with_sources: Return the stored fields of the hits.
        batch_size: Pairs per cross-encoder forward pass.

    Returns:
        :class:`SearchResults` whose ``parts`` add ``rescore`` (the ``rerank`` score) and ``cross_encoder`` (the raw
        logit) to ``bm25`` / ``cosine`` for the hits the cross-encoder scored.

    Raises:
        PlanError: the plan is not ``rerank_ce``, or no cross-encoder was given (names ``cross_encoder``).
    """
    t0 = time.perf_counter()
    if plan.mode != "rerank_ce":
        raise PlanError(f"mode must be rerank_ce for the cross-encoder stage, got {plan.mode!r}")
    if scorer is None:
        raise PlanError(
            "cross_encoder: mode rerank_ce needs a cross-encoder model; set cross_encoder (--cross-encoder)"
        )
    first = engine.search(plan.replace(mode="rerank", k=max(plan.k, plan.ce_window)), query_vector)
    window = first.hits[: plan.ce_window]
    stored = engine.get(h.doc_id for h in window) if window else {}
    texts = [document_text(stored.get(h.doc_id, {})) for h in window]
    logits = scorer.score(plan.query, texts, batch_size=batch_size) if texts else np.zeros(0, np.float32)
    ranked = apply_cross_encoder([(h.doc_id, h.score) for h in first.hits], logits, plan.ce_window, plan.ce_weight)
    hits = [Hit(d, s) for d, s in ranked[: plan.k]]
    parts = {d: dict(p) for d, p in first.parts.items()}
    for h, z in zip(window, np.asarray(logits).reshape(-1), strict=True):
        parts.setdefault(h.doc_id, {}).update({"rescore": h.score, "cross_encoder": float(z)})
    parts = {h.doc_id: parts.get(h.doc_id, {}) for h in hits}
    sources: dict[str, dict[str, Any]] = {}
    if with_sources:
        missing = [h.doc_id for h in hits if h.doc_id not in stored]
        fetched = {**stored, **(engine.get(missing) if missing else {})}
        sources = {h.doc_id: fetched[h.doc_id] for h in hits if h.doc_id in fetched}
    return SearchResults(hits=hits, sources=sources, took_ms=(time.perf_counter() - t0) * 1000, parts=parts)
