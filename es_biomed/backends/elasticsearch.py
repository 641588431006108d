"""Elasticsearch backend: the embedded engine's interface over a cluster, reranking inside the cluster.

* Indices are versioned (``es-biomed-v1``, ``-v2``...) behind the alias ``es-biomed``; a reindex builds the next
  version and swaps the alias atomically (zero downtime).
* Writes go through ``helpers.streaming_bulk`` with deterministic ``_id`` (the document id), retries with capped
  exponential backoff on 429, and a per-document report of partial failures.
* Searches send the body compiled from the same :class:`~es_biomed.query.SearchPlan` the embedded engine runs.
* Connection settings come from ``ES_URL``, ``ES_API_KEY``, ``ES_USERNAME`` / ``ES_PASSWORD`` and ``ES_CA_CERTS``.
  Credentials never appear in logs, reprs or error messages.

Pick the client by server major version: ``elasticsearch`` 9.x for Elasticsearch 9, 8.x for Elasticsearch 8
(the client refuses a server of another major, and any server that does not send ``X-Elastic-Product``).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from es_biomed.backends.base import Hit, SearchResults
from es_biomed.backends.es_mappings import (
    ALIAS,
    PIPELINE_ID,
    SEARCH_TEMPLATE_ID,
    TEMPLATE_NAME,
    index_template,
    ingest_pipeline,
    search_template_source,
    versioned_index,
)
from es_biomed.corpus.passages import PassageConfig, embed_passages
from es_biomed.corpus.types import Document
from es_biomed.encode.base import Encoder, EncoderInfo
from es_biomed.errors import EncoderMismatchError, EsBiomedError, require
from es_biomed.query.es_compile import compile_search
from es_biomed.query.plan import SearchPlan

__all__ = [
    "ESConfig",
    "BulkReport",
    "ElasticsearchBackend",
    "make_client",
    "document_source",
    "bulk_actions",
    "redact",
]

logger = logging.getLogger(__name__)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with URL user-info and each secret replaced by ``***``."""
    text = re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


@dataclass(frozen=True)
class ESConfig:
    """Connection settings. ``repr`` never shows the API key or the password.

    Example:
        >>> ESConfig("https://u:p@es:9200", password="p")
        ESConfig(url='https://***@es:9200', username=None, ca_certs=None, alias='es-biomed', request_timeout=30.0)
    """

    url: str
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    alias: str = ALIAS
    request_timeout: float = 30.0

    def __repr__(self) -> str:
        return (
            f"ESConfig(url={redact(self.url)!r}, username={self.username!r}, ca_certs={self.ca_certs!r}, "
            f"alias={self.alias!r}, request_timeout={self.request_timeout!r})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ESConfig:
        """Read ``ES_URL``, ``ES_API_KEY``, ``ES_USERNAME``, ``ES_PASSWORD``, ``ES_CA_CERTS``, ``ES_ALIAS``.

        Raises:
            EsBiomedError: no URL is configured.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "url": env.get("ES_URL"),
            "api_key": env.get("ES_API_KEY") or None,
            "username": env.get("ES_USERNAME") or None,
            "password": env.get("ES_PASSWORD") or None,
            "ca_certs": env.get("ES_CA_CERTS") or None,
            "alias": env.get("ES_ALIAS") or ALIAS,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values["url"]:
            raise EsBiomedError("no Elasticsearch URL: set ES_URL (and ES_API_KEY or ES_USERNAME/ES_PASSWORD)")
        return cls(**values)

    def redact(self, text: str) -> str:
        return redact(text, self.api_key, self.password)


def make_client(cfg: ESConfig) -> Any:
    """An ``elasticsearch.Elasticsearch`` client for ``cfg`` (retries on timeouts and 429/502/503/504)."""
    es = require("elasticsearch", "es")
    kwargs: dict[str, Any] = {"request_timeout": cfg.request_timeout, "max_retries": 3, "retry_on_timeout": True}
    if cfg.api_key:
        kwargs["api_key"] = cfg.api_key
    elif cfg.username:
        kwargs["basic_auth"] = (cfg.username, cfg.password or "")
    if cfg.ca_certs:
        kwargs["ca_certs"] = cfg.ca_certs
    return es.Elasticsearch(cfg.url, **kwargs)


def document_source(
    doc: Document, passage_vectors: np.ndarray | None, passage_texts: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``_source`` of a document: fields, ``embedding`` (passage 0) and nested ``passages``."""
    src: dict[str, Any] = {k: v for k, v in doc.to_json().items() if v not in ("", [])}
    if doc.year is not None:
        src["year"] = doc.year
    if passage_vectors is not None and len(passage_vectors):
        vecs = [[float(x) for x in row] for row in np.asarray(passage_vectors, dtype=np.float32)]
        src["embedding"] = vecs[0]
        src["passages"] = [{"text": t, "embedding": v} for t, v in zip(passage_texts, vecs, strict=True)]
    return src


def bulk_actions(
    docs: Iterable[Document], blocks: Iterable[np.ndarray | None], texts: Iterable[Sequence[str]], index: str
) -> Iterator[dict[str, Any]]:
    """``index`` actions with deterministic ``_id`` (the document id): re-running a batch overwrites."""
    for doc, vecs, ptexts in zip(docs, blocks, texts, strict=True):
        yield {"_op_type": "index", "_index": index, "_id": doc.id, "_source": document_source(doc, vecs, ptexts)}


@dataclass
class BulkReport:
    """Outcome of a bulk ingest: counts, plus each failed document's id, status and reason."""

    ok: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed": self.failed, "seconds": self.seconds}


class ElasticsearchBackend:
    """Index and search an Elasticsearch cluster with the embedded engine's interface.

    Args:
        client: An ``elasticsearch.Elasticsearch`` (see :func:`make_client`).
        alias: The alias searched and written; versioned indices are ``<alias>-v<N>``.
        passages: Rescore and kNN over the nested ``passages`` (best passage), like the embedded engine.
        passage_config: How long bodies are cut (must match what the embedded engine uses for parity).
    """

    def __init__(
        self, client: Any, alias: str = ALIAS, passages: bool = True, passage_config: PassageConfig | None = None
    ) -> None:
        self.client = client
        self.alias = alias
        self.passages = passages
        self.passage_config = passage_config or PassageConfig()

    # ------------------------------------------------------------------ lifecycle
    def indices(self) -> list[str]:
        """Concrete indices behind the alias (empty if the alias does not exist)."""
        if not self.client.indices.exists_alias(name=self.alias):
            return []
        return sorted(self.client.indices.get_alias(name=self.alias))

    def _versions(self) -> list[int]:
        names = self.client.indices.get(index=f"{self.alias}-v*", allow_no_indices=True, expand_wildcards="open")
        out = []
        for name in names:
            m = re.fullmatch(re.escape(self.alias) + r"-v(\d+)", name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def setup(
        self,
        encoder: EncoderInfo | dict[str, Any],
        index_options: dict[str, Any] | None = None,
        pipeline_model_id: str | None = None,
    ) -> dict[str, Any]:
        """Install the index template and the search template, and create ``<alias>-v1`` behind the alias if needed.

        Idempotent. Refuses to proceed when the alias already points at an index built with another encoder.
        """
        enc = encoder.to_dict() if isinstance(encoder, EncoderInfo) else dict(encoder)
        if self.indices():
            self.check_encoder(enc)
        body = index_template(int(enc["dims"]), enc, index_options, self.alias)
        self.client.indices.put_index_template(name=self._template_name(), **body)
        self.client.put_script(id=SEARCH_TEMPLATE_ID, script={"lang": "mustache", "source": search_template_source()})
        if pipeline_model_id:
            self.client.ingest.put_pipeline(id=PIPELINE_ID, **ingest_pipeline(pipeline_model_id))
        created = None
        if not self.indices():
            created = versioned_index(self.alias, (max(self._versions(), default=0)) + 1)
            self.client.indices.create(index=created, aliases={self.alias: {"is_write_index": True}})
        return {"alias": self.alias, "indices": self.indices(), "created": created, "template": self._template_name()}

    def _template_name(self) -> str:
        return TEMPLATE_NAME if self.alias == ALIAS else self.alias

    def status(self) -> dict[str, Any]:
        """Alias, indices with document counts, encoder identity, and which templates are installed."""
        indices = self.indices()
        counts = {i: self.client.count(index=i)["count"] for i in indices}
        return {
            "alias": self.alias,
            "indices": counts,
            "encoder": self.encoder_meta() if indices else None,
            "index_template": bool(self.client.indices.exists_index_template(name=self._template_name())),
            "search_template": _script_exists(self.client, SEARCH_TEMPLATE_ID),
        }

    def reindex(
        self,
        encoder: EncoderInfo | dict[str, Any],
        delete_old: bool = False,
        index_options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Copy the current index into the next version (current template) and swap the alias atomically.

        Searches see the old index until the swap and the new one after it. Vectors are copied, so the
        encoder must be the same one; to change encoders, index the corpus again into a fresh alias.
        """
        enc = encoder.to_dict() if isinstance(encoder, EncoderInfo) else dict(encoder)
        old = self.indices()
        if not old:
            raise EsBiomedError(f"alias {self.alias!r} does not exist; run `es-biomed es setup` first")
        self.check_encoder(enc)
        self.client.indices.put_index_template(
            name=self._template_name(), **index_template(int(enc["dims"]), enc, index_options, self.alias)
        )
        new = versioned_index(self.alias, max(self._versions(), default=0) + 1)
        self.client.indices.create(index=new)
        result = self.client.reindex(
            source={"index": self.alias}, dest={"index": new}, wait_for_completion=True, refresh=True
        )
        if result.get("failures"):
            raise EsBiomedError(
                f"reindex into {new} had {len(result['failures'])} failures; the alias still points at {old}"
            )
        actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": self.alias}} for i in old]
        actions.append({"add": {"index": new, "alias": self.alias, "is_write_index": True}})
        self.client.indices.update_aliases(actions=actions)
        if delete_old:
            for i in old:
                self.client.indices.delete(index=i)
        return {
            "alias": self.alias,
            "from": old,
            "to": new,
            "copied": result.get("total", 0),
            "deleted_old": delete_old,
        }

    # ------------------------------------------------------------------ identity
    def _mapping(self) -> dict[str, Any]:
        (index,) = self.indices()[-1:] or (None,)
        if index is None:
            raise EsBiomedError(f"alias {self.alias!r} does not exist; run `es-biomed es setup` first")
        return self.client.indices.get_mapping(index=index)[index]["mappings"]

    def encoder_meta(self) -> dict[str, Any]:
        """The encoder recorded in the mapping's ``_meta``, with the mapped vector dims."""
        mappings = self._mapping()
        meta = dict(mappings.get("_meta", {}).get("encoder", {}))
        meta["mapped_dims"] = mappings.get("properties", {}).get("embedding", {}).get("dims")
        return meta

    def check_encoder(self, encoder: EncoderInfo | dict[str, Any]) -> None:
        """Before any write or search: the encoder's dims must equal the mapping's (and its fingerprint the recorded one).

        Raises:
            EncoderMismatchError: names both encoders.
        """
        enc = encoder.to_dict() if isinstance(encoder, EncoderInfo) else dict(encoder)
        mine = self.encoder_meta()
        if mine.get("mapped_dims") != enc.get("dims"):
            raise EncoderMismatchError(
                f"alias {self.alias!r} maps {mine.get('mapped_dims')}-dim vectors but encoder {enc.get('name')!r} "
                f"produces {enc.get('dims')}; index into a new alias or use the encoder the index was built with"
            )
        if mine.get("fingerprint") and mine.get("fingerprint") != enc.get("fingerprint"):
            raise EncoderMismatchError(
                f"alias {self.alias!r} was built with encoder {mine.get('name')!r} (fingerprint {mine.get('fingerprint')}); "
                f"got {enc.get('name')!r} (fingerprint {enc.get('fingerprint')})"
            )

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
    ) -> BulkReport:
        """Embed and bulk-index ``docs``; 429s are retried with capped exponential backoff.

        Returns:
            A :class:`BulkReport`; each failed document is listed with its id, HTTP status and reason.

        Raises:
            elasticsearch.helpers.BulkIndexError: only with ``raise_on_error=True``.
        """
        helpers = require("elasticsearch.helpers", "es")
        self.check_encoder(encoder.info)
        t0 = time.perf_counter()
        report = BulkReport()
        batch: list[Document] = []

        def flush() -> None:
            texts, blocks = embed_passages(batch, encoder, self.passage_config, encode_batch_size)
            actions = bulk_actions(batch, blocks, texts, self.alias)
            for ok, info in helpers.streaming_bulk(
                self.client,
                actions,
                chunk_size=500,
                max_retries=max_retries,
                initial_backoff=initial_backoff,
                max_backoff=max_backoff,
                retry_on_status=(429,),
                raise_on_error=raise_on_error,
            ):
                if ok:
                    report.ok += 1
                else:
                    item = next(iter(info.values()))
                    report.failed.append(
                        {"id": item.get("_id"), "status": item.get("status"), "error": item.get("error")}
                    )
            batch.clear()

        for doc in docs:
            batch.append(doc)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        if refresh:
            self.client.indices.refresh(index=self.alias)
        report.seconds = round(time.perf_counter() - t0, 3)
        if report.failed:
            logger.warning(
                "bulk ingest into %s: %d documents failed (first: %s)",
                self.alias,
                len(report.failed),
                report.failed[0],
            )
        return report

    def delete(self, doc_ids: Iterable[str]) -> int:
        """Delete documents by id; returns how many existed."""
        helpers = require("elasticsearch.helpers", "es")
        actions = ({"_op_type": "delete", "_index": self.alias, "_id": d} for d in doc_ids)
        ok, _ = helpers.bulk(self.client, actions, raise_on_error=False, ignore_status=(404,), stats_only=True)
        self.client.indices.refresh(index=self.alias)
        return int(ok)

    # ------------------------------------------------------------------ reads
    def count(self) -> int:
        return int(self.client.count(index=self.alias)["count"])

    def request(self, plan: SearchPlan, query_vector: Any = None) -> dict[str, Any]:
        """The exact ``_search`` body this backend sends for ``plan``."""
        return compile_search(plan, query_vector, passages=self.passages)

    def search(
        self, plan: SearchPlan, query_vector: np.ndarray | None = None, with_sources: bool = False
    ) -> SearchResults:
        """Run ``plan`` in the cluster (the rescore happens there)."""
        body = self.request(plan, None if query_vector is None else [float(x) for x in query_vector])
        t0 = time.perf_counter()
        resp = self.client.search(index=self.alias, body=body)
        hits = [Hit(h["_id"], float(h["_score"])) for h in resp["hits"]["hits"]]
        sources = {h["_id"]: h.get("_source", {}) for h in resp["hits"]["hits"]} if with_sources else {}
        return SearchResults(hits=hits, sources=sources, took_ms=(time.perf_counter() - t0) * 1000)

    def get(self, doc_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(doc_ids)
        if not ids:
            return {}
        resp = self.client.mget(index=self.alias, ids=ids, source_excludes=["embedding", "passages"])
        return {d["_id"]: d["_source"] for d in resp["docs"] if d.get("found")}


def _script_exists(client: Any, script_id: str) -> bool:
    es = require("elasticsearch", "es")
    try:
        client.get_script(id=script_id)
    except es.NotFoundError:
        return False
    return True
