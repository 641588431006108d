"""What a cluster write sends and reports: the document source with its passage vectors, the bulk actions (with
deterministic ``_id``), the ``_reindex`` body, and the report of a bulk run."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from es_biomed.backends.es_mappings import (
    ce_text_painless,
)
from es_biomed.corpus.types import Document
from es_biomed.errors import (
    ClusterUnavailableError,
)
from es_biomed.query.cross_stage import document_text
from es_biomed.query.es_compile import CE_TEXT_FIELD

__all__ = ["CE_TEXT_SCRIPT", "BulkInterruptedError", "BulkReport", "bulk_actions", "document_source", "reindex_body"]


def document_source(
    doc: Document, passage_vectors: np.ndarray | None, passage_texts: Sequence[str] = (), ce_text: bool = False
) -> dict[str, Any]:
    """The ``_source`` of a document: fields, ``embedding`` (passage 0) and nested ``passages``; with ``ce_text``
    also ``ce_text``, the ``title + ". " + abstract`` that ``rerank_ce``'s cross-encoder reads in Elasticsearch
    (:func:`~es_biomed.query.cross_stage.document_text`, the text the embedded engine's stage scores)."""
    src: dict[str, Any] = {k: v for k, v in doc.to_json().items() if v not in ("", [])}
    if doc.year is not None:
        src["year"] = doc.year
    if ce_text and (doc.title or doc.abstract):
        src[CE_TEXT_FIELD] = document_text(src)
    if passage_vectors is not None and len(passage_vectors):
        vecs = [[float(x) for x in row] for row in np.asarray(passage_vectors, dtype=np.float32)]
        src["embedding"] = vecs[0]
        src["passages"] = [{"text": t, "embedding": v} for t, v in zip(passage_texts, vecs, strict=True)]
    return src


def bulk_actions(
    docs: Iterable[Document],
    blocks: Iterable[np.ndarray | None],
    texts: Iterable[Sequence[str]],
    index: str,
    ce_text: bool = False,
) -> Iterator[dict[str, Any]]:
    """``index`` actions with deterministic ``_id`` (the document id): re-running a batch overwrites."""
    for doc, vecs, ptexts in zip(docs, blocks, texts, strict=True):
        src = document_source(doc, vecs, ptexts, ce_text)
        yield {"_op_type": "index", "_index": index, "_id": doc.id, "_source": src}


#: Painless for ``_reindex`` into an Elasticsearch version that maps ``ce_text``: what :func:`document_source` sets.
CE_TEXT_SCRIPT = f"if (ctx._source.ce_text == null) {{ {ce_text_painless('ctx._source')} }}"


def reindex_body(alias: str, dest: str, engine: str, scripts: bool = True) -> dict[str, Any]:
    """The ``_reindex`` body that copies ``alias`` into ``dest``; on Elasticsearch with Painless (``scripts``) it
    fills ``ce_text`` where an older version lacks it (:data:`CE_TEXT_SCRIPT`), so ``rerank_ce`` works on the copy."""
    body: dict[str, Any] = {"source": {"index": alias}, "dest": {"index": dest}}
    if engine == "elasticsearch" and scripts:
        body["script"] = {"lang": "painless", "source": CE_TEXT_SCRIPT}
    return body


@dataclass
class BulkReport:
    """Outcome of a bulk ingest: counts, each failed document's id, status and reason, and the ids written."""

    ok: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    written_ids: list[str] = field(default_factory=list, repr=False)
    #: Documents the cluster answered 429 (too many requests) and the bulk helper sent again.
    throttled: int = 0
    #: Of ``seconds``: cutting and embedding the passages, and the bulk requests.
    embed_seconds: float = 0.0
    bulk_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failed": self.failed,
            "seconds": self.seconds,
            "throttled": self.throttled,
            "embed_seconds": round(self.embed_seconds, 3),
            "bulk_seconds": round(self.bulk_seconds, 3),
        }


class BulkInterruptedError(ClusterUnavailableError):
    """The cluster went away during a bulk ingest. ``report`` holds what was written before; ids are
    deterministic, so running the same ingest again completes it without duplicates."""

    def __init__(self, message: str, report: BulkReport) -> None:
        super().__init__(message)
        self.report = report

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self), self.report))
