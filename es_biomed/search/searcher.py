"""``Searcher``: an embedded index plus its encoder, with a pyserini-like API."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.corpus.types import Run
from es_biomed.encode.base import Encoder
from es_biomed.errors import PlanError
from es_biomed.query.cross_stage import CrossScorer, search_with_cross_encoder
from es_biomed.query.plan import SearchPlan
from es_biomed.query.results import SearchResults

__all__ = ["Searcher"]


class Searcher:
    """Search an embedded index with BM25, BM25 + cosine rescore, dense kNN, hybrid RRF, or the rescore followed by
    a cross-encoder (``rerank_ce``).

    Args:
        index: An :class:`EmbeddedIndex` or its path.
        encoder: Encoder instance, name or path. ``None`` loads the encoder recorded in the index; any other
            encoder must match it (else :class:`~es_biomed.errors.EncoderMismatchError`).
        plan: Defaults for every search (fields, window, weights, mode...); overridden per call.
        cross_encoder: The ``rerank_ce`` cross-encoder when the plan names none: a scorer instance
            (:class:`~es_biomed.encode.cross_encoder.CrossEncoderScorer`), a registered name or a directory. Named
            cross-encoders are loaded on first use, once each.

    Example:
        >>> s = Searcher("indexes/scifact-sample")  # built by `make demo`               # doctest: +SKIP
        >>> [(h.doc_id, round(h.score, 3)) for h in s.search("BRCA1 breast cancer", k=2, mode="bm25").hits]  # doctest: +SKIP
        [('5864770', 9.012), ('23557241', 8.849)]
    """

    def __init__(
        self,
        index: EmbeddedIndex | str | os.PathLike[str],
        encoder: Encoder | str | None = None,
        plan: SearchPlan | None = None,
        cross_encoder: CrossScorer | str | None = None,
    ) -> None:
        self.index = index if isinstance(index, EmbeddedIndex) else EmbeddedIndex(index)
        self._encoder_arg = encoder
        self._encoder: Encoder | None = encoder if isinstance(encoder, Encoder) else None
        if self._encoder is not None:
            self.index.check_encoder(self._encoder.info)
        self.plan = plan or SearchPlan("")
        self._cross_encoder_arg = cross_encoder
        self._cross_encoders: dict[str, CrossScorer] = {}
        if cross_encoder is not None and not isinstance(cross_encoder, str):
            self._cross_encoders[cross_encoder.name] = cross_encoder

    @property
    def encoder(self) -> Encoder:
        """The query encoder, loaded on first use (BM25-only searches never load it)."""
        if self._encoder is None:
            from es_biomed.encode.loading import load_query_encoder

            enc = load_query_encoder(
                self._encoder_arg if isinstance(self._encoder_arg, str) else self.index.encoder_info["name"]
            )
            self.index.check_encoder(enc.info)
            self._encoder = enc
        return self._encoder

    def cross_encoder_for(self, plan: SearchPlan) -> CrossScorer:
        """The cross-encoder of a ``rerank_ce`` plan (``plan.cross_encoder``, else the searcher's), loaded once.

        Raises:
            PlanError: neither the plan nor the searcher names one (the message names ``cross_encoder``).
        """
        arg = self._cross_encoder_arg
        name = plan.cross_encoder or (arg if isinstance(arg, str) else None)
        if name is None:
            if arg is None:
                raise PlanError(
                    "cross_encoder: mode rerank_ce needs a cross-encoder model; set cross_encoder to a registered "
                    "name or a model directory (--cross-encoder NAME)"
                )
            return arg  # type: ignore[return-value]
        if name not in self._cross_encoders:
            from es_biomed.encode.cross_encoder import load_cross_encoder

            scorer = load_cross_encoder(name)
            self._cross_encoders[name] = self._cross_encoders[scorer.name] = scorer
        return self._cross_encoders[name]

    def execute(self, plan: SearchPlan, query_vector: Any = None, with_sources: bool = False) -> SearchResults:
        """Run a complete plan with an already encoded query (``rerank_ce`` adds the cross-encoder stage)."""
        if plan.mode == "rerank_ce":
            scorer = self.cross_encoder_for(plan)
            return search_with_cross_encoder(self.index, plan, query_vector, scorer, with_sources=with_sources)
        return self.index.search(plan, query_vector, with_sources=with_sources)

    def _plan(self, query: str, overrides: dict[str, Any]) -> SearchPlan:
        return self.plan.replace(query=query, **overrides)

    def search(self, query: str, k: int = 10, with_sources: bool = True, **overrides: Any) -> SearchResults:
        """Search one query; ``overrides`` are :class:`SearchPlan` fields (``mode``, ``window_size``...)."""
        plan = self._plan(query, {"k": k, **overrides})
        if plan.mode == "rerank_ce":
            self.cross_encoder_for(plan)  # a missing or broken cross-encoder fails before the query is encoded
        qvec = self.encoder.encode_queries([query])[0] if plan.mode != "bm25" else None
        return self.execute(plan, qvec, with_sources=with_sources)

    def batch_search(
        self, queries: Sequence[str], qids: Sequence[str], k: int = 10, batch_size: int = 64, **overrides: Any
    ) -> Run:
        """Search many queries (encoded in batches); returns a run ``{qid: {doc_id: score}}``."""
        if len(queries) != len(qids):
            raise ValueError(f"{len(queries)} queries but {len(qids)} qids")
        probe = self._plan("", {"k": k, **overrides})
        if probe.mode == "rerank_ce":
            self.cross_encoder_for(probe)
        vecs = self.encoder.encode_queries(list(queries), batch_size=batch_size) if probe.mode != "bm25" else None
        run: Run = {}
        for i, (qid, text) in enumerate(zip(qids, queries, strict=True)):
            res = self.execute(probe.replace(query=text), None if vecs is None else vecs[i])
            run[qid] = {h.doc_id: h.score for h in res.hits}
        return run
