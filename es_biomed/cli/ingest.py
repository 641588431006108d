"""``es-biomed ingest submit | status | retry-failed``: the Celery job commands."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from es_biomed.cli.support import EXIT_REJECTED, fail, format_option, handled_errors


# --------------------------------------------------------------------------------------------------- ingest
@click.group(name="ingest")
def ingest_group() -> None:
    """Ingest at scale with Celery workers on a Redis broker (``BROKER_URL``, default redis://127.0.0.1:6379/0).

    Start workers with ``celery -A workers.app worker -Q es-biomed`` (one process per core); for the embedded
    engine, also one writer: ``celery -A workers.app worker -Q es-biomed-write --concurrency 1``.
    """


def _app() -> Any:
    from es_biomed.ingest.queue import make_app

    return make_app()


def _print_status(st: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(st.to_dict(), indent=2))
        return
    rate = f"{st.docs_per_s:.1f} docs/s" if st.docs_per_s else "n/a docs/s"
    eta = f"ETA {st.eta_s:.0f}s" if st.eta_s is not None else "ETA n/a"
    click.echo(
        f"job {st.job}: {st.done}/{st.batches} batches done, {st.failed} failed, {st.running} running, "
        f"{st.pending} pending; {st.documents} documents written, {st.rejected} records quarantined; {rate}, {eta}"
    )
    if st.throttled:
        click.echo(f"  {st.throttled} documents throttled (429) by the cluster and sent again")
    for f in st.failures[:10]:
        click.echo(f"  failed batch {f['batch']} ({f['file']} from line {f['first_line']}): {f['error']}")


@ingest_group.command(name="submit")
@click.argument("corpus", type=click.Path(exists=True))
@click.option(
    "--backend",
    type=click.Choice(["local", "embedded", "es", "opensearch"]),
    default="local",
    show_default=True,
    help="local (= embedded engine, written by the single writer queue), es or opensearch (each worker bulk-writes "
    "through the cluster backend, connected from its own ES_URL / OPENSEARCH_URL).",
)
@click.option("--index", "index_path", default=None, help="local: index directory (required). es / opensearch: alias.")
@format_option
@click.option("--encoder", default=None, help="Encoder name or path, as the workers see it (default: the index's).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Records per batch (one task each).")
@click.option("--job-id", default=None, help="Job id (default: random).")
@click.option("--wait", is_flag=True, help="Wait until every batch is done or failed, printing progress.")
@click.option("--json", "as_json", is_flag=True)
def ingest_submit(
    corpus: str,
    backend: str,
    index_path: str | None,
    fmt: str | None,
    encoder: str | None,
    batch_size: int,
    job_id: str | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Cut CORPUS into batches by reference (file plus byte or record range) and queue them."""
    from es_biomed.ingest.jobs import Target, submit_job

    backend = "local" if backend == "embedded" else backend
    try:
        if backend == "local":
            if not index_path:
                raise click.UsageError("--index PATH is required with --backend local")
            index_path = str(Path(index_path).resolve())
            if encoder is None:
                from es_biomed.backends.embedded.index import EmbeddedIndex

                if EmbeddedIndex.exists(index_path):
                    encoder = str(EmbeddedIndex(index_path).encoder_info["name"])
        else:
            from es_biomed.backends.es_mappings import ALIAS

            prefix = "OPENSEARCH" if backend == "opensearch" else "ES"
            index_path = index_path or os.environ.get(f"{prefix}_ALIAS") or ALIAS
        from es_biomed.encode.loading import DEFAULT_ENCODER

        target = Target(backend, index_path, encoder or DEFAULT_ENCODER)  # type: ignore[arg-type]
        app = _app()
        job = submit_job(app, corpus, target, fmt=fmt, batch_size=batch_size, job_id=job_id)  # type: ignore[arg-type]
    except handled_errors() as exc:
        raise fail(exc) from exc
    if as_json and not wait:
        click.echo(json.dumps({"job": job.id, "batches": len(job.batches), "target": target.__dict__}))
    else:
        click.echo(f"job {job.id}: {len(job.batches)} batches of {corpus} queued for {target.backend}:{target.index}")
    if wait:
        _wait(app, job.id, as_json)


def _wait(app: Any, job_id: str, as_json: bool, interval: float = 2.0) -> None:
    import time

    from es_biomed.ingest.jobs import job_status

    last = None
    while True:
        st = job_status(app, job_id)
        if st.finished:
            break
        progress = (st.done, st.failed, st.running, st.pending)
        if not as_json and progress != last:  # one line per change, not per poll
            _print_status(st, False)
            last = progress
        time.sleep(interval)
    _print_status(st, as_json)
    if st.failed:
        raise click.ClickException(
            f"{st.failed} batches failed; resubmit them with `es-biomed ingest retry-failed {job_id}`"
        )
    if st.rejected:
        sys.exit(EXIT_REJECTED)


@ingest_group.command(name="status")
@click.argument("job_id", required=False)
@click.option(
    "--rejects", "show_rejects", is_flag=True, help="List the quarantined records (file, line, field, error)."
)
@click.option("--wait", is_flag=True, help="Wait until the job is finished.")
@click.option("--json", "as_json", is_flag=True)
def ingest_status(job_id: str | None, show_rejects: bool, wait: bool, as_json: bool) -> None:
    """Batches done, failed, running and pending, documents per second and ETA of JOB_ID (default: the latest)."""
    from es_biomed.ingest.jobs import DeadLetterStore, job_status, latest_job_id

    try:
        app = _app()
        job_id = job_id or latest_job_id(app)
        if wait:
            _wait(app, job_id, as_json)
            return
        st = job_status(app, job_id)
        _print_status(st, as_json)
        if show_rejects:
            for rec in DeadLetterStore(app.backend.client, job_id).records():
                click.echo(json.dumps(rec, ensure_ascii=False))
    except handled_errors() as exc:
        raise fail(exc) from exc


@ingest_group.command(name="retry-failed")
@click.argument("job_id")
def ingest_retry_failed(job_id: str) -> None:
    """Resubmit the failed batches of JOB_ID."""
    from es_biomed.ingest.jobs import retry_failed

    try:
        numbers = retry_failed(_app(), job_id)
    except handled_errors() as exc:
        raise fail(exc) from exc
    click.echo(
        f"job {job_id}: resubmitted {len(numbers)} failed batches {numbers}"
        if numbers
        else f"job {job_id}: no failed batches"
    )
