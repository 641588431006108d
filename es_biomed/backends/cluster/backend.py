"""The cluster backend: the embedded engine's interface over Elasticsearch or OpenSearch, reranking in the cluster.

One class runs every operation for both engines; a :class:`~es_biomed.backends.dialects.Dialect` supplies the
client, the mappings, the compiler dialect and the error classes (the SQLAlchemy dialect pattern).

* Indices are versioned (``es-biomed-v1``, ``-v2``...) behind the alias ``es-biomed``; a reindex builds the next
  version as a server-side task and swaps the alias atomically (zero downtime).
* Writes go through the client's ``helpers.streaming_bulk`` with deterministic ``_id`` (the document id), 429
  retries with capped exponential backoff, and a per-document report of partial failures. A cluster that goes
  away mid-bulk raises :class:`BulkInterruptedError` carrying what was written; a re-run overwrites, never
  duplicates.
* Searches send the body compiled from the same :class:`~es_biomed.query.SearchPlan` the embedded engine runs.
  Where the cluster lacks a feature (the ``rrf`` retriever without an Enterprise or trial license, hybrid search
  on OpenSearch), the same RRF arithmetic runs client-side over two in-cluster searches, with a logged notice.
* Connection settings come from ``ES_URL`` / ``OPENSEARCH_URL`` (+ ``_API_KEY``, ``_USERNAME`` / ``_PASSWORD``,
  ``_CA_CERTS``). Credentials never appear in logs, reprs or error messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from es_biomed.backends.cluster.admin import IndexLifecycle
from es_biomed.backends.cluster.bulk import BulkInterruptedError, BulkReport, bulk_actions
from es_biomed.backends.cluster.config import CLUSTER_ENGINES, ClusterConfig
from es_biomed.backends.dialects import Capabilities
from es_biomed.backends.es_mappings import (
    SEARCH_TEMPLATE_ID,
)
from es_biomed.corpus.passages import embed_passages
from es_biomed.corpus.types import Document
from es_biomed.encode.base import Encoder
from es_biomed.errors import (
    ClusterError,
    PlanError,
)
from es_biomed.query.es_compile import CE_TEXT_FIELD, compile_search
from es_biomed.query.plan import SearchPlan, apply_rescore, reciprocal_rank_fusion
from es_biomed.query.results import Hit, SearchResults

__all__ = ["SHARD_RETRIES", "ClusterBackend", "ThrottleCounter", "connect_cluster"]

#: Times a search is sent again when its response reports failed shards, or the cluster answers 429 / 5xx (waits of
#: 0.25, 0.5, 1, 2, 2, 2 s: about 8 s in all): a node that died or restarts takes the cluster a moment to route around.
SHARD_RETRIES = 6
SHARD_RETRY_WAIT = 0.25
SHARD_RETRY_MAX_WAIT = 2.0

logger = logging.getLogger(__name__)


class ThrottleCounter:
    """The client as the bulk helper sees it, counting the documents the cluster answered 429 (too many requests)
    into ``report.throttled``: the helper retries them itself, so without this they would leave no trace."""

    def __init__(self, client: Any, report: BulkReport) -> None:
        self._client, self._report = client, report

    def bulk(self, *args: Any, **kwargs: Any) -> Any:
        resp = self._client.bulk(*args, **kwargs)
        body = resp.body if hasattr(resp, "body") else resp
        if isinstance(body, dict) and body.get("errors"):
            self._report.throttled += sum(
                1 for item in body.get("items", []) if next(iter(item.values()), {}).get("status") == 429
            )
        return resp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class ClusterBackend(IndexLifecycle):
    """Index and search an Elasticsearch or OpenSearch cluster with the embedded engine's interface.

    Constructed as :class:`~es_biomed.backends.cluster.connection.ClusterConnection` is (its arguments), usually
    through :meth:`connect` or :func:`connect_cluster`.

    Example:
        >>> be = ClusterBackend.connect(ClusterConfig.from_env(engine="opensearch"))   # doctest: +SKIP
        >>> be.setup(encoder.info)                                                         # doctest: +SKIP
        >>> be.index_documents(docs, encoder).ok                                           # doctest: +SKIP
        500
    """

    # ------------------------------------------------------------------ writes
    def index_documents(
        self,
        docs: Iterable[Document],
        encoder: Encoder,
        *,
        batch_size: int = 256,
        encode_batch_size: int = 32,
        max_retries: int = 5,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        raise_on_error: bool = False,
        refresh: bool = True,
        index: str | None = None,
    ) -> BulkReport:
        """Embed and bulk-index ``docs``; 429s are retried with capped exponential backoff.

        ``index``: write into this concrete index instead of the alias (a new version being filled before its swap;
        its mapping's encoder is the one checked).

        Returns:
            A :class:`BulkReport`; each failed document is listed with its id, HTTP status and reason.

        Raises:
            EncoderMismatchError: before any write, when the encoder's dims or identity differ from the mapping's.
            BulkInterruptedError: the cluster went away; ``.report`` holds the documents written before.
            BulkIndexError: only with ``raise_on_error=True`` (the client library's class).
        """
        helpers = self.dialect.helpers()
        target = index or self.alias
        if index is None:
            self.check_encoder(encoder.info)
            ce_text = self.has_ce_text()
        else:
            self.check_index_encoder(index, encoder.info)
            ce_text = CE_TEXT_FIELD in self._mapping(index).get("properties", {})
        t0 = time.perf_counter()
        report = BulkReport()
        counting = ThrottleCounter(self.client, report)
        batch: list[Document] = []

        def flush() -> None:
            t_embed = time.perf_counter()
            texts, blocks = embed_passages(batch, encoder, self.passage_config, encode_batch_size)
            t_bulk = time.perf_counter()
            report.embed_seconds += t_bulk - t_embed
            actions = bulk_actions(batch, blocks, texts, target, ce_text)
            stream = helpers.streaming_bulk(
                counting,
                actions,
                chunk_size=500,
                max_retries=max_retries,
                initial_backoff=initial_backoff,
                max_backoff=max_backoff,
                raise_on_error=raise_on_error,
                **self.dialect.bulk_kwargs(),
            )
            try:
                for ok, info in stream:
                    item = next(iter(info.values()))
                    if ok:
                        report.ok += 1
                        report.written_ids.append(str(item.get("_id")))
                    else:
                        report.failed.append(
                            {"id": item.get("_id"), "status": item.get("status"), "error": item.get("error")}
                        )
            except self.dialect.connection_errors() as exc:
                report.seconds = round(time.perf_counter() - t0, 3)
                raise BulkInterruptedError(
                    f"{self.engine} at {self._url()} went away during the bulk ingest into {self.alias} "
                    f"({type(exc).__name__}) after {report.ok} documents were written (last: "
                    f"{report.written_ids[-1] if report.written_ids else 'none'}); ids are deterministic, so "
                    "running the same ingest again completes it without duplicates",
                    report,
                ) from None
            report.bulk_seconds += time.perf_counter() - t_bulk
            batch.clear()

        for doc in docs:
            batch.append(doc)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        if refresh:
            self._call(self.client.indices.refresh, index=target)
        report.seconds = round(time.perf_counter() - t0, 3)
        if report.failed:
            logger.warning(
                "bulk ingest into %s: %d documents failed (first: %s)",
                self.alias,
                len(report.failed),
                report.failed[0],
            )
        return report

    def reembed(
        self,
        docs: Iterable[Document],
        encoder: Encoder,
        *,
        delete_old: bool = False,
        index_options: dict[str, Any] | None = None,
        analyzer: str | None = None,
        batch_size: int = 256,
    ) -> dict[str, Any]:
        """Change the alias's encoder with zero downtime: the next version is made for ``encoder`` (its mapping
        records it), ``docs`` are embedded with it and written there, and only then is the alias swapped, atomically.

        Searches keep going to the old index until the swap; one that was encoded for the old encoder and reaches
        the swap is refused (:class:`~es_biomed.errors.EncoderSwappedError`, which the Searcher answers by loading
        the new encoder), never run against the new documents.

        Raises:
            ClusterError: the alias does not exist, or documents failed (the alias is left on the old index).
        """
        old = self.indices()
        if not old:
            raise ClusterError(f"alias {self.alias!r} does not exist; run `es-biomed {self._cli()} setup` first")
        new = self.next_version(encoder.info.to_dict(), index_options, analyzer)
        report = self.index_documents(docs, encoder, index=new, batch_size=batch_size)
        if report.failed:
            raise ClusterError(
                f"{len(report.failed)} documents failed writing {new} (first: {report.failed[0]}); the alias still "
                f"points at {', '.join(old)}"
            )
        self.swap_alias(old, new, delete_old)
        return {
            "alias": self.alias,
            "from": old,
            "to": new,
            "encoder": encoder.info.to_dict(),
            "written": report.ok,
            "seconds": report.seconds,
            "deleted_old": delete_old,
        }

    def delete(self, doc_ids: Iterable[str]) -> int:
        """Delete documents by id; returns how many existed."""
        helpers = self.dialect.helpers()
        actions = ({"_op_type": "delete", "_index": self.alias, "_id": d} for d in doc_ids)
        ok, _ = helpers.bulk(self.client, actions, raise_on_error=False, ignore_status=(404,), stats_only=True)
        self._call(self.client.indices.refresh, index=self.alias)
        return int(ok)

    def request(self, plan: SearchPlan, query_vector: Any = None) -> dict[str, Any]:
        """The exact ``_search`` body this backend sends for ``plan`` (in-cluster modes).

        Raises:
            PlanError: ``rerank_ce`` on an Elasticsearch index without ``ce_text`` (made before that field).
        """
        if plan.mode == "rerank_ce" and self.engine == "elasticsearch" and not self.has_ce_text():
            raise PlanError(
                f"rerank_ce reads {CE_TEXT_FIELD!r}, which {self.indices()[-1]} (alias {self.alias!r}) does not map: "
                f"it was made before that field; `es-biomed {self._cli()} reindex` copies it into a new version "
                f"that has it"
            )
        return compile_search(plan, query_vector, dialect=self.engine, passages=self.passages)  # type: ignore[arg-type]

    def _needs_scripts(self, plan: SearchPlan) -> None:
        if plan.mode in ("rerank", "hybrid_rerank", "rerank_ce") and not self.capabilities().scripts:
            raise ClusterError(
                f"mode {plan.mode!r} rescores with a Painless script_score, but {self.engine} "
                f"{self.capabilities().version} at {self._url()} has no lang-painless module"
            )

    def _client_side_hybrid(self) -> bool:
        caps = self.capabilities()
        if self.engine == "opensearch":
            self._notice(
                "hybrid",
                "OpenSearch hybrid search needs the neural-search plugin's search pipeline: fusing BM25 and kNN "
                "client-side with the same RRF arithmetic",
            )
            return True
        if not caps.rrf_retriever:
            self._notice(
                "hybrid",
                f"the rrf retriever needs an Enterprise or trial license (this cluster: {caps.license or 'no x-pack'}); "
                "fusing BM25 and kNN client-side with the same RRF arithmetic",
            )
            return True
        return False

    def search(
        self,
        plan: SearchPlan,
        query_vector: np.ndarray | None = None,
        with_sources: bool = False,
        encoder_fingerprint: str | None = None,
    ) -> SearchResults:
        """Run ``plan`` in the cluster (the rescore happens there), on the index pinned for the encoder
        ``encoder_fingerprint`` made ``query_vector`` with (``None``: the encoder checked last, see
        :meth:`search_target`)."""
        if plan.mode != "bm25" and query_vector is None:
            raise PlanError(f"mode {plan.mode!r} needs a query vector")
        vec = None if query_vector is None else [float(x) for x in query_vector]
        t0 = time.perf_counter()
        if plan.mode in ("hybrid", "hybrid_rerank") and self._client_side_hybrid():
            hits = self._hybrid(plan, vec, encoder_fingerprint)
            sources = self.get(h.doc_id for h in hits) if with_sources else {}
            return SearchResults(hits=hits, sources=sources, took_ms=(time.perf_counter() - t0) * 1000)
        self._needs_scripts(plan)
        try:
            resp = self._search_body(self.request(plan, vec), encoder_fingerprint)
        except self.dialect.api_error() as exc:
            if plan.mode in ("hybrid", "hybrid_rerank") and self.dialect.status_of(exc) == 403:
                # the license probe said yes but the cluster refused: remember, tell, and fuse client-side
                caps = self.capabilities()
                self._caps = Capabilities(caps.engine, caps.version, caps.modules - {"x-pack-rank-rrf"}, caps.license)
                self._client_side_hybrid()
                return self.search(plan, query_vector, with_sources, encoder_fingerprint)
            raise ClusterError(
                f"{self.engine} refused the {plan.mode} search: {self._redact(str(exc))[:600]}"
            ) from None
        hits = [Hit(h["_id"], float(h["_score"])) for h in resp["hits"]["hits"]]
        sources = {h["_id"]: h.get("_source", {}) for h in resp["hits"]["hits"]} if with_sources else {}
        return SearchResults(hits=hits, sources=sources, took_ms=(time.perf_counter() - t0) * 1000)

    def _search_body(self, body: dict[str, Any], fingerprint: str | None = None) -> dict[str, Any]:
        """Send ``body`` to :meth:`search_target`; a response with failed shards (a node that just died), or a 429 / 5xx
        answer (every copy of a shard briefly out of reach), is asked again after a short wait, up to
        :data:`SHARD_RETRIES` times, and never returned partial; the pinned index gone (deleted after a swap) looks the
        alias up again."""
        for attempt in range(SHARD_RETRIES + 1):
            target = self.search_target(fingerprint)
            try:
                resp = self._call(self.client.search, index=target, body=body)
            except self.dialect.not_found():
                if target == self.alias or attempt == SHARD_RETRIES:
                    raise
                self.repin(fingerprint)  # deleted after an alias swap: follow the alias (or refuse another encoder)
                continue
            except self.dialect.api_error() as exc:
                status = self.dialect.status_of(exc) or 0
                if not (status == 429 or status >= 500) or attempt == SHARD_RETRIES:
                    raise
                # every copy of a shard briefly unreachable (a node restarting): search_phase_execution_exception
                self.shard_retries += 1
                logger.warning("%s answered %s to a search; asking again", target, status)
                time.sleep(min(SHARD_RETRY_WAIT * 2**attempt, SHARD_RETRY_MAX_WAIT))
                continue
            shards = resp.get("_shards", {})
            if not shards.get("failed"):
                return resp  # type: ignore[no-any-return]
            self.shard_retries += 1
            reason = (shards.get("failures") or [{}])[0].get("reason", {})
            logger.warning(
                "%s: %d of %d shards failed (%s); asking again", target, shards["failed"], shards.get("total"), reason
            )
            time.sleep(min(SHARD_RETRY_WAIT * 2**attempt, SHARD_RETRY_MAX_WAIT))
        raise ClusterError(
            f"{self.engine}: {shards.get('failed')} of {shards.get('total')} shards of {target} still failed after "
            f"{SHARD_RETRIES} retries ({self._redact(str(reason))[:300]}); refusing partial results"
        )

    def _hybrid(self, plan: SearchPlan, vec: list[float] | None, fingerprint: str | None = None) -> list[Hit]:
        """RRF of the in-cluster BM25 and kNN top ``window_size`` (as the ``rrf`` retriever), then for
        ``hybrid_rerank`` the cosine rescore over the fused window (as the ``rescorer`` retriever)."""
        first = plan.replace(mode="bm25", k=plan.window_size)
        lexical = [h.doc_id for h in self.search(first, None, encoder_fingerprint=fingerprint).hits]
        dense_plan = plan.replace(mode="dense", k=plan.window_size)
        dense = [h.doc_id for h in self.search(dense_plan, vec, encoder_fingerprint=fingerprint).hits]  # type: ignore[arg-type]
        fused = reciprocal_rank_fusion([lexical, dense], plan.rank_constant, plan.window_size)
        if plan.mode == "hybrid_rerank":
            cos = self.vector_scores(vec, [d for d, _ in fused[: plan.window_size]], fingerprint)  # type: ignore[arg-type]
            fused = apply_rescore(fused, {d: c + 1.0 for d, c in cos.items()}, plan)
        return [Hit(d, s) for d, s in fused[: plan.k]]

    def vector_scores(
        self, query_vector: Sequence[float], doc_ids: Sequence[str], encoder_fingerprint: str | None = None
    ) -> dict[str, float]:
        """Cosine of ``query_vector`` with each document's best passage (vectors read from ``_source`` of the index
        pinned for ``encoder_fingerprint``)."""
        if not doc_ids:
            return {}
        field = "passages.embedding" if self.passages else "embedding"
        body = {"query": {"ids": {"values": list(doc_ids)}}, "size": len(doc_ids), "_source": {"includes": [field]}}
        resp = self._search_body(body, encoder_fingerprint)  # the pinned index: vectors of the query's own encoder
        q = np.asarray(query_vector, dtype=np.float32)
        q = q / (np.linalg.norm(q) or 1.0)
        out = {}
        for h in resp["hits"]["hits"]:
            src = h.get("_source", {})
            rows = [p["embedding"] for p in src.get("passages", []) if "embedding" in p] if self.passages else []
            if not self.passages and "embedding" in src:
                rows = [src["embedding"]]
            if rows:
                m = np.asarray(rows, dtype=np.float32)
                m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
                out[h["_id"]] = float(np.max(m @ q))
        return out

    def search_template(self, params: dict[str, Any]) -> SearchResults:
        """Run the stored search template ``es-biomed-rescore`` with ``params`` (``query``, ``query_vector``...)."""
        t0 = time.perf_counter()
        body = {"id": SEARCH_TEMPLATE_ID, "params": params}
        resp = self._call(self.client.search_template, index=self.alias, body=body)
        hits = [Hit(h["_id"], float(h["_score"])) for h in resp["hits"]["hits"]]
        return SearchResults(hits=hits, took_ms=(time.perf_counter() - t0) * 1000)


def connect_cluster(backend: str, alias: str | None = None, **kwargs: Any) -> ClusterBackend:
    """A cluster backend (``es`` / ``elasticsearch`` or ``opensearch``) configured from the environment, after
    checking that the server answers and is that engine (credentials never printed).

    Raises:
        ClusterError: no URL configured, the server is unreachable, refuses the credentials or is another engine.
    """
    cfg = ClusterConfig.from_env(engine=CLUSTER_ENGINES.get(backend, backend), alias=alias)
    return ClusterBackend.connect(cfg, **kwargs)
