"""Ingest tasks. Each takes references (job id, batch reference, target), calls one library step from
:mod:`es_biomed.ingest.steps`, and handles retries; none holds logic of its own."""

from __future__ import annotations

from typing import Any

from es_biomed.ingest.batches import BatchRef
from es_biomed.ingest.jobs import DeadLetterStore, Target
from es_biomed.ingest.steps import TRANSIENT_ERRORS, embed_batch, ingest_batch_cluster, write_batch
from workers.app import app

_RETRY = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": app.conf.es_biomed_retry_max,
}


def _sink(job_id: str) -> DeadLetterStore:
    return DeadLetterStore(app.backend.client, job_id)


@app.task(name="es_biomed.embed_batch", **_RETRY)
def embed(job_id: str, ref: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Embedded engine, step 1 (any worker): read, validate, embed, spool."""
    t = Target(**target)
    return embed_batch(BatchRef.from_dict(ref), job_id, t.index, t.encoder, _sink(job_id))


@app.task(name="es_biomed.write_batch", **_RETRY)
def write(embedded: dict[str, Any], job_id: str, target: dict[str, Any]) -> dict[str, Any]:
    """Embedded engine, step 2 (the single writer, queue ``es-biomed-write``): upsert and commit."""
    return write_batch(embedded, Target(**target).index)


@app.task(name="es_biomed.ingest_batch", **_RETRY)
def ingest_cluster(job_id: str, ref: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Elasticsearch or OpenSearch (any worker): read, validate, embed, bulk-write through the cluster backend."""
    t = Target(**target)
    return ingest_batch_cluster(BatchRef.from_dict(ref), t.backend, t.index, t.encoder, _sink(job_id))
