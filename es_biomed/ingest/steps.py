"""The steps an ingest worker runs for one batch. Plain functions: ``workers/tasks.py`` only wraps them.

* :func:`embed_batch` (embedded engine, any worker): read the batch by reference, quarantine bad records, cut
  passages, embed, and spool documents plus vectors to a file beside the index.
* :func:`write_batch` (embedded engine, the single writer): upsert a spool file and commit.
* :func:`ingest_batch_cluster` (Elasticsearch or OpenSearch, any worker): read, embed and bulk-write with
  deterministic ``_id`` through the one cluster backend.

Every step is idempotent: documents keep their corpus ids, so a batch that runs again overwrites its own
documents. Errors worth retrying (a busy index lock, a cluster that is unreachable or answers 429/5xx, a broker
that is restarting) are raised as :class:`TransientBackendError` or kept as is in :data:`TRANSIENT_ERRORS`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.corpus.types import Document
from es_biomed.encode.base import Encoder
from es_biomed.errors import EsBiomedError, IndexLockedError, RecordError
from es_biomed.ingest.batches import BatchRef, read_batch

__all__ = [
    "TransientBackendError",
    "TRANSIENT_ERRORS",
    "TRANSIENT_STATUS",
    "embed_batch",
    "write_batch",
    "ingest_batch_cluster",
    "ingest_batch_es",
    "cluster_for_worker",
    "load_worker_encoder",
]

logger = logging.getLogger(__name__)

#: HTTP statuses of an Elasticsearch answer that a later attempt may not get.
TRANSIENT_STATUS = frozenset({408, 429, 502, 503, 504})


class TransientBackendError(RuntimeError, EsBiomedError):
    """The backend failed in a way a retry may fix (unreachable, throttled, overloaded, locked)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self),))


def _transient_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [TransientBackendError, IndexLockedError]
    try:
        import redis.exceptions

        errors += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover - the workers extra brings redis
        pass
    return tuple(errors)


#: What ``autoretry_for`` retries with backoff.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = _transient_errors()


@functools.lru_cache(maxsize=4)
def load_worker_encoder(name: str) -> Any:
    """The encoder ``name`` on its fastest same-identity variant (bf16 / fp32 ONNX), loaded once per worker process."""
    from es_biomed.encode.loading import load_document_encoder

    return load_document_encoder(name)


def _spool_dir(index: str, job_id: str) -> Path:
    return Path(index) / "spool" / job_id


def _docs_from_json(raw: bytes) -> list[Document]:
    return [Document(**{**d, "authors": tuple(d["authors"])}) for d in json.loads(raw)]


def embed_batch(ref: BatchRef, job_id: str, index: str, encoder: str | Encoder, sink: Any) -> dict[str, Any]:
    """Read, validate, split and embed one batch; spool it for the writer.

    Args:
        ref: The batch.
        job_id: Its job (names the spool folder).
        index: Embedded index directory (the spool lives in ``<index>/spool/<job>/``).
        encoder: Encoder, or its name or path (loaded once per process).
        sink: Dead-letter store for bad records (``reject(err, raw)``).

    Returns:
        ``{"spool", "read", "rejected", "encoder", "passages", "started", "embed_s"}``; the spool path is what :func:`write_batch` takes.
    """
    from es_biomed.backends.embedded.index import EmbeddedIndex
    from es_biomed.corpus.passages import PassageConfig, embed_passages

    started = time.time()
    before = sink.count
    docs = read_batch(ref, on_error="quarantine", sink=sink)
    encoder = load_worker_encoder(encoder) if isinstance(encoder, str) else encoder
    cfg = EmbeddedIndex.read_config(index)  # the meta file only: opening the index would load every id
    passages = cfg.passages if cfg is not None else PassageConfig()
    _, blocks = embed_passages(docs, encoder, passages) if docs else ([], [])
    out = _spool_dir(index, job_id)
    out.mkdir(parents=True, exist_ok=True)
    spool = out / f"{ref.n:05d}.npz"
    tmp = out / f".{ref.n:05d}.{os.getpid()}.tmp.npz"
    payload = json.dumps([d.to_json() for d in docs], ensure_ascii=False).encode()
    vectors = np.concatenate(blocks) if blocks else np.zeros((0, encoder.dims), np.float32)
    counts = np.array([len(b) for b in blocks], dtype=np.int64)
    np.savez(tmp, vectors=vectors, counts=counts, docs=np.frombuffer(payload, dtype=np.uint8))
    os.replace(tmp, spool)
    return {
        "spool": str(spool),
        "read": len(docs),
        "rejected": sink.count - before,
        "encoder": encoder.info.to_dict(),
        "passages": {"max_words": passages.max_words, "overlap": passages.overlap},
        "started": started,
        "embed_s": round(time.time() - started, 3),
    }


def write_batch(embedded: dict[str, Any], index: str) -> dict[str, Any]:
    """Upsert a spooled batch into the embedded index and commit (the single-writer step).

    A spool that was already written (its ``.done`` marker exists) is not written again: the recorded result is
    returned, so a redelivered write task is a no-op.

    Raises:
        IndexLockedError: another writer holds the index (transient: retried).
    """
    from es_biomed.backends.embedded.index import EmbeddedIndex
    from es_biomed.corpus.passages import PassageConfig

    t0 = time.time()
    spool = Path(embedded["spool"])
    marker = spool.with_suffix(".done")
    if marker.exists():  # written before; a late duplicate of the embed step may have spooled it again
        spool.unlink(missing_ok=True)
        return dict(json.loads(marker.read_text()))
    if not spool.exists():
        raise FileNotFoundError(
            f"spool file {spool} is missing: the write worker must run on the machine (and see the directory) "
            "where the embed worker wrote it"
        )
    with np.load(spool, allow_pickle=False) as z:
        vectors, counts, docs = z["vectors"], z["counts"], _docs_from_json(z["docs"].tobytes())
    blocks = np.split(vectors, np.cumsum(counts)[:-1]) if len(counts) else []
    idx = EmbeddedIndex.create(index, embedded["encoder"], passages=PassageConfig(**embedded["passages"]))
    with idx.writer() as writer:
        writer.upsert(docs, blocks)
    result = {
        "read": embedded["read"],
        "written": len(docs),
        "rejected": embedded["rejected"],
        "started": embedded["started"],
        "embed_s": embedded.get("embed_s"),
        "write_s": round(time.time() - t0, 3),
        "finished": time.time(),
    }
    marker.write_text(json.dumps(result))
    spool.unlink()
    return result


@functools.lru_cache(maxsize=4)
def cluster_for_worker(engine: str, alias: str) -> Any:
    """The cluster backend of ``engine`` (``es`` / ``elasticsearch`` or ``opensearch``) for ``alias``, from the
    worker's environment, once per worker process. The clients are thread-safe but not fork-safe: this is first
    called inside the pool process (and ``workers.app`` clears it when a process starts), never before the fork."""
    from es_biomed.backends.cluster import connect_cluster

    return connect_cluster(engine, alias)


def ingest_batch_cluster(ref: BatchRef, engine: str, alias: str, encoder: str | Encoder, sink: Any) -> dict[str, Any]:
    """Read, validate, embed and bulk-index one batch into Elasticsearch or OpenSearch (alias from ``setup``),
    through the one cluster backend the CLI uses (deterministic ``_id``: the corpus ids).

    Documents the cluster rejects for good (a mapping conflict, a dims mismatch...) go to ``sink`` with their source
    location and the reason, never retried; throttling that outlives the bulk helper's own retries (429), connection
    errors and 5xx answers raise :class:`TransientBackendError`, so the whole batch is retried with backoff (the ids
    make that safe). Messages are redacted: no credential reaches a log or Redis.
    """
    from es_biomed.errors import ClusterUnavailableError

    started = time.time()
    before = sink.count
    docs = read_batch(ref, on_error="quarantine", sink=sink)
    encoder = load_worker_encoder(encoder) if isinstance(encoder, str) else encoder
    backend = cluster_for_worker(engine, alias)
    dialect = backend.dialect
    try:
        report = backend.index_documents(docs, encoder, batch_size=max(1, len(docs)), refresh=False)
    except (*dialect.connection_errors(), ClusterUnavailableError) as exc:
        # the backend names the URL (redacted) and the documents written before; the ids make a retry safe
        raise TransientBackendError(f"{dialect.display} unreachable: {backend.redact(str(exc))}") from None
    except dialect.api_error() as exc:
        status = dialect.status_of(exc)
        if status is not None and (status in TRANSIENT_STATUS or status >= 500):
            raise TransientBackendError(f"{dialect.display} answered {status}: {backend.redact(str(exc))}") from None
        raise
    throttled = [f for f in report.failed if f.get("status") in TRANSIENT_STATUS or (f.get("status") or 0) >= 500]
    if throttled:
        raise TransientBackendError(
            f"{len(throttled)} documents still throttled or refused by an overloaded node after the bulk retries "
            f"(first: {throttled[0]['id']}, status {throttled[0]['status']})"
        )
    origins = {d.id: d.origin for d in docs}
    for f in report.failed:
        origin = origins.get(f["id"])
        err = RecordError(
            origin.path if origin else ref.path,
            origin.line if origin else ref.first_line,
            "(document)",
            f"{dialect.display} rejected document {f['id']!r} (status {f['status']}): {f['error']}",
        )
        sink.reject(err, None)
    return {
        "read": len(docs),
        "written": report.ok,
        "rejected": sink.count - before,
        "throttled": report.throttled,
        "embed_s": round(report.embed_seconds, 3),
        "bulk_s": round(report.bulk_seconds, 3),
        "started": started,
        "finished": time.time(),
    }


def ingest_batch_es(ref: BatchRef, alias: str, encoder: str | Encoder, sink: Any) -> dict[str, Any]:
    """:func:`ingest_batch_cluster` into Elasticsearch."""
    return ingest_batch_cluster(ref, "es", alias, encoder, sink)
