"""``Searcher``: the one front door for searching, over the embedded engine, Elasticsearch or OpenSearch.

Every caller that searches (the CLI's ``search``, ``serve``, ``eval``, ``ask``, ``report`` and the benchmarks) goes
through it, so the sequence "encode the query with the index's query encoder -> check the encoder identity -> run the
plan (and the cross-encoder stage) -> results" exists once. Its defaults are the tuned preset the CLI uses
(``es_biomed/query/presets.json``), so the library and ``es-biomed search`` rank alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from es_biomed.backends.cluster import connect_cluster
from es_biomed.backends.embedded import EmbeddedIndex
from es_biomed.corpus.types import Run
from es_biomed.encode.base import Encoder
from es_biomed.errors import EncoderSwappedError, PlanError
from es_biomed.query.cross_stage import CrossScorer
from es_biomed.query.plan import SearchPlan
from es_biomed.query.presets import default_plan
from es_biomed.query.results import SearchResults
from es_biomed.search.stages import cross_encoder_stage

__all__ = ["Backend", "Engine", "Searcher"]

Backend = Literal["embedded", "es", "opensearch"]


class Engine(Protocol):
    """What the searcher needs of an engine: the embedded index and the cluster backend both are one."""

    def search(
        self,
        plan: SearchPlan,
        query_vector: Any = None,
        with_sources: bool = False,
        encoder_fingerprint: str | None = None,
    ) -> SearchResults: ...

    def check_encoder(self, encoder: Any) -> None: ...


class Searcher:
    """Search one index: BM25, BM25 + cosine rescore, dense kNN, hybrid RRF, or the rescore followed by a
    cross-encoder (``rerank_ce``), on whichever engine holds it.

    Args:
        index: An :class:`~es_biomed.backends.embedded.EmbeddedIndex` or its directory, a
            :class:`~es_biomed.backends.cluster.ClusterBackend` (any :class:`Engine`), or (with ``backend="es"`` /
            ``"opensearch"``) the
            alias of a cluster index, connected from the environment (``ES_URL`` / ``OPENSEARCH_URL``...).
        encoder: Query encoder instance, name or path. ``None`` loads the encoder the index records (the embedded
            index's configuration, the cluster mapping's ``_meta``) on its fastest same-identity query variant;
            any other encoder must match it (else :class:`~es_biomed.errors.EncoderMismatchError`).
        plan: Defaults for every search; ``None`` is the tuned preset (:func:`~es_biomed.query.presets.default_plan`).
            Each call overrides fields of it.
        cross_encoder: The ``rerank_ce`` cross-encoder when the plan names none: a scorer instance, a registered
            name or a directory (loaded on first use, once each). On Elasticsearch the cluster runs its own.
        backend: ``"embedded"`` (default), ``"es"`` or ``"opensearch"``: how to read a string ``index``.

    Example:
        >>> s = Searcher("indexes/scifact-sample")  # built by `make demo`               # doctest: +SKIP
        >>> [h.doc_id for h in s.search("Ribosomopathies have a low degree of cell and tissue specific pathology.",
        ...                             k=3).hits]                                           # doctest: +SKIP
        ['12486491', ...]
    """

    def __init__(
        self,
        index: Engine | str | os.PathLike[str],
        encoder: Encoder | str | None = None,
        plan: SearchPlan | None = None,
        cross_encoder: CrossScorer | str | None = None,
        backend: Backend = "embedded",
    ) -> None:
        self.engine: Any
        if not isinstance(index, (str, os.PathLike)):
            if not (hasattr(index, "search") and hasattr(index, "check_encoder")):
                raise TypeError(f"index: expected an index path, an alias or an engine, got {index!r}")
            self.engine = index
        elif backend == "embedded":
            self.engine = EmbeddedIndex(index)
        else:
            self.engine = connect_cluster(backend, str(index))
        self._encoder_arg = encoder
        self._encoder: Encoder | None = encoder if isinstance(encoder, Encoder) else None
        if self._encoder is not None:
            self.engine.check_encoder(self._encoder.info)
        self.plan = plan or default_plan()
        self._cross_encoder_arg = cross_encoder
        self._cross_encoders: dict[str, CrossScorer] = {}
        if cross_encoder is not None and not isinstance(cross_encoder, str):
            self._cross_encoders[cross_encoder.name] = cross_encoder

    # ------------------------------------------------------------------ what it searches
    @property
    def index(self) -> Any:
        """The engine searched (an embedded index or a cluster backend)."""
        return self.engine

    @property
    def is_embedded(self) -> bool:
        return isinstance(self.engine, EmbeddedIndex)

    def recorded_encoder(self) -> dict[str, Any]:
        """The encoder identity the index records (``name``, ``dims``, ``fingerprint``...)."""
        if hasattr(self.engine, "encoder_info"):
            return dict(self.engine.encoder_info)
        return dict(self.engine.encoder_meta())

    @property
    def encoder(self) -> Encoder:
        """The query encoder, loaded on first use (BM25-only searches never load it) and checked against the index."""
        if self._encoder is None:
            from es_biomed.encode.loading import DEFAULT_ENCODER, load_query_encoder

            name = self._encoder_arg if isinstance(self._encoder_arg, str) else self.recorded_encoder().get("name")
            enc = load_query_encoder(name or DEFAULT_ENCODER)
            self.engine.check_encoder(enc.info)
            self._encoder = enc
        return self._encoder

    def refresh(self) -> bool:
        """Pick up the embedded index's last commit (at most once a second); a cluster refreshes by itself."""
        return self.engine.refresh() if isinstance(self.engine, EmbeddedIndex) else False

    # ------------------------------------------------------------------ plans
    def plan_for(self, query: str, **overrides: Any) -> SearchPlan:
        """The searcher's plan for ``query`` with :class:`SearchPlan` fields overridden."""
        return self.plan.replace(query=query, **overrides)

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

    def _local_cross_encoder(self, plan: SearchPlan) -> bool:
        """Whether this searcher runs the ``rerank_ce`` stage itself (a cluster runs its own reranker)."""
        return plan.mode == "rerank_ce" and self.is_embedded

    # ------------------------------------------------------------------ searching
    def encode(self, queries: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> Any:
        """Query vectors from the searcher's query encoder."""
        return self.encoder.encode_queries(list(queries), batch_size=batch_size, show_progress=show_progress)

    def execute(
        self, plan: SearchPlan, query_vector: Any = None, with_sources: bool = False, encoder: Encoder | None = None
    ) -> SearchResults:
        """Run a complete plan with an already encoded query (``rerank_ce`` adds the cross-encoder stage).

        ``encoder`` made ``query_vector`` (default: the searcher's encoder, when loaded): the engine searches only
        documents of that encoder (a cluster pins each encoder to its index, see
        :meth:`~es_biomed.backends.cluster.connection.ClusterConnection.search_target`).
        """
        if self._local_cross_encoder(plan):
            return cross_encoder_stage(
                self.engine, plan, query_vector, self.cross_encoder_for(plan), with_sources=with_sources
            )
        enc = encoder if encoder is not None else self._encoder
        fingerprint = enc.fingerprint if enc is not None and query_vector is not None else None
        return self.engine.search(plan, query_vector, with_sources=with_sources, encoder_fingerprint=fingerprint)

    def run(self, plan: SearchPlan, with_sources: bool = True) -> SearchResults:
        """Encode ``plan.query`` (unless the plan is BM25 only) and run the plan.

        A cluster alias swapped to an index of another encoder meanwhile (a zero-downtime model change) is followed:
        the encoder that index records is loaded and the query encoded again, once; a query vector is never sent
        to another encoder's documents. (An encoder given by the caller is kept: the mismatch is raised.)
        """
        if self._local_cross_encoder(plan):
            self.cross_encoder_for(plan)  # a missing or broken cross-encoder fails before the query is encoded
        for attempt in (0, 1):
            enc = self.encoder if plan.mode != "bm25" else None  # one encoder for the vector and the index it meets
            qvec = enc.encode_queries([plan.query])[0] if enc is not None else None
            try:
                return self.execute(plan, qvec, with_sources=with_sources, encoder=enc)
            except EncoderSwappedError:
                if attempt or self._encoder_arg is not None:
                    raise
                self._encoder = None  # the next self.encoder loads (and pins) the new index's encoder
        raise AssertionError("unreachable")  # pragma: no cover

    def search(self, query: str, k: int = 10, with_sources: bool = True, **overrides: Any) -> SearchResults:
        """Search one query; ``overrides`` are :class:`SearchPlan` fields (``mode``, ``window_size``...)."""
        return self.run(self.plan_for(query, k=k, **overrides), with_sources=with_sources)

    def batch_search(
        self, queries: Sequence[str], qids: Sequence[str], k: int = 10, batch_size: int = 64, **overrides: Any
    ) -> Run:
        """Search many queries (encoded in batches); returns a run ``{qid: {doc_id: score}}``."""
        if len(queries) != len(qids):
            raise ValueError(f"{len(queries)} queries but {len(qids)} qids")
        return self.run_plans(dict(zip(qids, queries, strict=True)), {"run": self.plan_for("", k=k, **overrides)},
                              batch_size=batch_size)["run"]  # fmt: skip

    def run_plans(
        self,
        queries: Mapping[str, str],
        plans: Mapping[str, SearchPlan],
        batch_size: int = 64,
        show_progress: bool = False,
    ) -> dict[str, Run]:
        """One run per named plan over ``{qid: text}``; the queries are encoded once, and only when a plan needs it.

        What the evaluation protocols call: ``{plan name: {qid: {doc_id: score}}}``.
        """
        qids = list(queries)
        texts = [queries[q] for q in qids]
        for plan in plans.values():
            if self._local_cross_encoder(plan):
                self.cross_encoder_for(plan)
        enc = self.encoder if any(p.mode != "bm25" for p in plans.values()) else None
        vecs = (
            enc.encode_queries(texts, batch_size=batch_size, show_progress=show_progress) if enc is not None else None
        )
        runs: dict[str, Run] = {}
        for name, plan in plans.items():
            run: Run = {}
            for i, qid in enumerate(qids):
                res = self.execute(plan.replace(query=texts[i]), None if vecs is None else vecs[i], encoder=enc)
                run[qid] = {h.doc_id: h.score for h in res.hits}
            runs[name] = run
        return runs
