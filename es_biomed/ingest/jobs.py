"""Ingest jobs on a Celery/Redis queue: submit by reference, follow progress, quarantine, retry what failed.

A job is a manifest stored in Redis (``es-biomed:job:<id>``): the corpus, the target and the list of
:class:`~es_biomed.ingest.batches.BatchRef`. Each batch is one task (Elasticsearch: read, embed, bulk-write) or a
chain of two (embedded engine: read and embed on any worker, then write on the single writer queue). Task ids are
deterministic (``<job>:<n>`` and ``<job>:<n>:write``), so the Celery result backend tells each batch's state, and
a batch that runs again overwrites its documents (their ids come from the corpus) instead of duplicating them.

Bad records go to the job's dead-letter store (a Redis hash keyed by ``file:line``, so a re-run batch does not
count them twice) with their source location.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from es_biomed.corpus.formats import CorpusFormat
from es_biomed.errors import EsBiomedError, RecordError
from es_biomed.ingest.batches import BatchRef, plan_batches
from es_biomed.ingest.queue import QUEUE, WRITE_QUEUE

__all__ = [
    "CLUSTER_TARGETS",
    "Target",
    "Job",
    "JobStatus",
    "DeadLetterStore",
    "JobNotFoundError",
    "batch_task_ids",
    "submit_job",
    "job_status",
    "retry_failed",
]

logger = logging.getLogger(__name__)

KEY_PREFIX = "es-biomed"
Backend = Literal["local", "es", "opensearch"]
#: The targets whose batches each worker bulk-writes itself (one task per batch), through the one cluster backend.
CLUSTER_TARGETS = ("es", "opensearch")


class JobNotFoundError(LookupError, EsBiomedError):
    """No job with this id in the broker's Redis."""


@dataclass(frozen=True)
class Target:
    """Where a job writes. Credentials are never part of it: workers read them from their own environment.

    Attributes:
        backend: ``"local"`` (embedded engine; ``index`` is a directory on the writer's machine), ``"es"``
            (Elasticsearch) or ``"opensearch"``; the workers connect with their own ``ES_URL`` / ``OPENSEARCH_URL``.
        index: Embedded index directory, or the cluster alias.
        encoder: Encoder name or path, resolved on each worker.
    """

    backend: Backend
    index: str
    encoder: str

    def __post_init__(self) -> None:
        if self.backend not in ("local", *CLUSTER_TARGETS):
            raise ValueError(f"backend must be 'local', 'es' or 'opensearch', got {self.backend!r}")


@dataclass
class Job:
    id: str
    corpus: str
    fmt: CorpusFormat
    target: Target
    batches: list[BatchRef]
    created: float = field(default_factory=time.time)

    def to_json(self) -> str:
        d = asdict(self)
        return json.dumps(d)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Job:
        d = json.loads(raw)
        return cls(
            id=d["id"],
            corpus=d["corpus"],
            fmt=d["fmt"],
            target=Target(**d["target"]),
            batches=[BatchRef.from_dict(b) for b in d["batches"]],
            created=d["created"],
        )


def _redis(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url)


def _job_key(job_id: str) -> str:
    return f"{KEY_PREFIX}:job:{job_id}"


class DeadLetterStore:
    """A job's quarantined records in Redis, keyed by ``file:line``. Has the ``reject(err, raw)`` sink interface."""

    def __init__(self, client: Any, job_id: str) -> None:
        self.client = client
        self.key = f"{_job_key(job_id)}:rejects"
        self.count = 0

    @classmethod
    def from_url(cls, url: str, job_id: str) -> DeadLetterStore:
        return cls(_redis(url), job_id)

    def reject(self, err: RecordError, raw: bytes | str | None = None) -> None:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        rec = {**err.to_dict(), "raw": (raw or "").rstrip("\r\n")[:2000]}
        self.client.hset(self.key, f"{err.path}:{err.line}", json.dumps(rec, ensure_ascii=False))
        self.count += 1

    def records(self) -> list[dict[str, Any]]:
        """All quarantined records, in file and line order."""
        recs = [json.loads(v) for v in self.client.hvals(self.key)]
        return sorted(recs, key=lambda r: (r["file"], r["line"] if isinstance(r["line"], int) else 0, str(r["line"])))

    def __len__(self) -> int:
        return int(self.client.hlen(self.key))


def batch_task_ids(job: Job, n: int) -> tuple[str, str | None]:
    """``(read/embed task id, write task id or None)`` of batch ``n``."""
    base = f"{job.id}:{n:05d}"
    return base, (f"{base}:write" if job.target.backend == "local" else None)


def _signature(app: Any, job: Job, ref: BatchRef) -> Any:
    from celery import chain

    first_id, write_id = batch_task_ids(job, ref.n)
    target = asdict(job.target)
    if job.target.backend in CLUSTER_TARGETS:
        return app.signature("es_biomed.ingest_batch", args=(job.id, ref.to_dict(), target), queue=QUEUE).set(
            task_id=first_id
        )
    embed = app.signature("es_biomed.embed_batch", args=(job.id, ref.to_dict(), target), queue=QUEUE).set(
        task_id=first_id
    )
    write = app.signature("es_biomed.write_batch", args=(job.id, target), queue=WRITE_QUEUE).set(task_id=write_id)
    return chain(embed, write)


def submit_job(
    app: Any,
    corpus: str,
    target: Target,
    *,
    fmt: CorpusFormat | None = None,
    batch_size: int = 64,
    job_id: str | None = None,
) -> Job:
    """Cut ``corpus`` into batches by reference, store the job manifest, and enqueue every batch.

    Returns:
        The :class:`Job` (its ``id`` is what ``es-biomed ingest status`` takes).

    Raises:
        FileNotFoundError: the corpus does not exist.
        ValueError: ``job_id`` exists already, or bad parameters.
    """
    from es_biomed.corpus.formats import detect_format

    path = Path(corpus).resolve()
    if not path.exists():
        raise FileNotFoundError(f"corpus {path} not found")
    fmt = fmt or detect_format(path)
    job = Job(
        id=job_id or uuid.uuid4().hex[:12],
        corpus=str(path),
        fmt=fmt,
        target=target,
        batches=plan_batches(path, fmt, batch_size),
    )
    client = app.backend.client
    if not client.set(_job_key(job.id), job.to_json(), nx=True):
        raise ValueError(f"job {job.id!r} exists already; choose another --job-id")
    client.zadd(f"{KEY_PREFIX}:jobs", {job.id: job.created})
    for ref in job.batches:
        _signature(app, job, ref).apply_async()
    logger.info("job %s: %d batches of %s submitted", job.id, len(job.batches), path)
    return job


def load_job(app: Any, job_id: str) -> Job:
    raw = app.backend.client.get(_job_key(job_id))
    if raw is None:
        raise JobNotFoundError(f"no ingest job {job_id!r} in {app.conf.result_backend!r}")
    return Job.from_json(raw)


def latest_job_id(app: Any) -> str:
    ids = app.backend.client.zrevrange(f"{KEY_PREFIX}:jobs", 0, 0)
    if not ids:
        raise JobNotFoundError("no ingest jobs submitted yet")
    return str(ids[0].decode())


@dataclass
class JobStatus:
    """Progress of a job, from the result backend."""

    job: str
    batches: int
    done: int
    failed: int
    running: int
    pending: int
    documents: int
    rejected: int
    #: Documents a cluster answered 429 (too many requests) and the bulk helper sent again: backpressure at work.
    throttled: int
    docs_per_s: float | None
    eta_s: float | None
    failures: list[dict[str, Any]]

    @property
    def finished(self) -> bool:
        return self.done + self.failed == self.batches

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _states(app: Any, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Result-backend metadata of many tasks in one round trip (missing ones are PENDING)."""
    backend = app.backend
    keys = [backend.get_key_for_task(t) for t in task_ids]
    out: dict[str, dict[str, Any]] = {}
    for tid, raw in zip(task_ids, backend.client.mget(keys) if keys else [], strict=True):
        out[tid] = backend.decode_result(raw) if raw else {"status": "PENDING", "result": None}
    return out


def _batch_state(metas: Mapping[str, dict[str, Any]], first: str, write: str | None) -> tuple[str, dict[str, Any]]:
    a = metas[first]
    if a["status"] == "FAILURE":
        return "failed", a
    if write is None:
        final = a
    else:
        final = metas[write]
        if final["status"] == "FAILURE":
            return "failed", final
    if final["status"] == "SUCCESS":
        return "done", final
    if a["status"] in ("STARTED", "RETRY") or (write is not None and final["status"] in ("STARTED", "RETRY")):
        return "running", final
    if write is not None and a["status"] == "SUCCESS":
        return "running", final  # embedded, waiting for the writer
    return "pending", final


def _error_text(exc: Any) -> str:
    """``Type: message`` of a failed task's result (the backend rebuilds the exception, or leaves its dict)."""
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, dict):
        return f"{exc.get('exc_type', 'Error')}: {exc.get('exc_message', exc)}"
    return str(exc)


def job_status(app: Any, job_id: str) -> JobStatus:
    """Batches done, failed, running and pending; documents written; throughput and ETA."""
    job = load_job(app, job_id)
    ids = [batch_task_ids(job, ref.n) for ref in job.batches]
    metas = _states(app, [t for pair in ids for t in pair if t is not None])
    counts = {"done": 0, "failed": 0, "running": 0, "pending": 0}
    docs = throttled = 0
    started: list[float] = []
    finished: list[float] = []
    left_records = 0
    failures = []
    for ref, (first, write) in zip(job.batches, ids, strict=True):
        state, meta = _batch_state(metas, first, write)
        counts[state] += 1
        if state == "done" and isinstance(meta.get("result"), dict):
            res = meta["result"]
            docs += int(res.get("written", 0))
            throttled += int(res.get("throttled", 0))
            started.append(float(res.get("started", job.created)))
            finished.append(float(res.get("finished", time.time())))
        elif state == "failed":
            failures.append(
                {
                    "batch": ref.n,
                    "task": meta.get("task_id") or first,
                    "error": _error_text(meta.get("result")),
                    "file": ref.path,
                    "first_line": ref.first_line,
                }
            )
        else:
            left_records += ref.records
    rate = None
    if finished:
        elapsed = max(finished) - min(min(started), job.created)
        rate = docs / elapsed if elapsed > 0 else None
    eta = left_records / rate if rate and left_records else (0.0 if rate else None)
    rejected = len(DeadLetterStore(app.backend.client, job.id))
    return JobStatus(
        job=job.id,
        batches=len(job.batches),
        documents=docs,
        rejected=rejected,
        throttled=throttled,
        docs_per_s=round(rate, 2) if rate else None,
        eta_s=round(eta, 1) if eta is not None else None,
        failures=failures,
        **counts,
    )


def retry_failed(app: Any, job_id: str) -> list[int]:
    """Resubmit the failed batches of a job (same task ids, old results forgotten). Returns their numbers."""
    job = load_job(app, job_id)
    status = job_status(app, job_id)
    numbers = [f["batch"] for f in status.failures]
    for n in numbers:
        for tid in batch_task_ids(job, n):
            if tid is not None:
                app.AsyncResult(tid).forget()
        _signature(app, job, job.batches[n]).apply_async()
    return numbers
