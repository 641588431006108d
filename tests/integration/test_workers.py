"""Celery ingest on a real Redis broker, with real worker processes, the shipped MiniLM and CORD-19 records.

Each test starts its own ``redis-server`` (installed from Debian if missing) and ``celery -A workers.app worker``
processes, and stops them by PID. The fault tests: (a) SIGKILL a worker mid-batch, (b) restart Redis mid-run,
(c) malformed records mixed in, (d) a transient backend failure (the index lock held by another writer).
In every case the indexed id set must equal the valid input id set, with no duplicates.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("celery")
pytest.importorskip("torch")

from es_biomed.backends.embedded.index import EmbeddedIndex  # noqa: E402
from es_biomed.ingest.jobs import DeadLetterStore, Target, batch_task_ids, job_status, submit_job  # noqa: E402
from es_biomed.ingest.queue import QUEUE, WRITE_QUEUE, make_app  # noqa: E402
from tests.celery_workers import RESTORE, VISIBILITY, Worker, wait_for  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path):
    """A private Redis, and a factory of workers pointed at it; everything is stopped by PID afterwards."""
    redis = RedisServer(tmp_path / "redis").start()
    env = {
        **os.environ,
        "BROKER_URL": redis.url,
        "ES_BIOMED_VISIBILITY_TIMEOUT": str(VISIBILITY),
        "ES_BIOMED_RESTORE_INTERVAL": str(RESTORE),
        "USE_TF": "0",
        "PYTHONPATH": str(REPO),
    }
    workers: list[Worker] = []

    class Cluster:
        def __init__(self) -> None:
            self.redis = redis
            self.env = env
            self.app = make_app(env)

        def worker(self, queue: str, name: str) -> Worker:
            w = Worker(env, queue, name, tmp_path).start()
            workers.append(w)
            return w

    yield Cluster()
    for w in workers:
        w.stop()
    redis.stop()


@pytest.fixture(scope="module")
def cord_sample(shared_data, tmp_path_factory):
    """The first 60 CORD-19 records, as a BEIR JSONL file."""
    src = shared_data / "cord19" / "merged_dedup_cord_uid.jsonl"
    lines = src.read_bytes().splitlines(keepends=True)[:60]
    out = tmp_path_factory.mktemp("cord") / "corpus.jsonl"
    out.write_bytes(b"".join(lines))
    return out, [json.loads(x)["_id"] for x in lines]


def wait_finished(app, job_id: str, timeout: float = 240):
    return wait_for(lambda: (s := job_status(app, job_id)).finished and s, timeout, f"job {job_id} to finish")


def assert_indexed_exactly(index: Path, ids: list[str]) -> None:
    ix = EmbeddedIndex(index)
    assert sorted(ix.doc_ids()) == sorted(ids)  # the doc table: one row per id
    assert ix.bm25_doc_count() == len(ids)  # BM25 side: no duplicate Lucene-style docs either
    assert len(list(Path(index).glob("spool/*/*.npz"))) == 0  # every spool written and removed


def started_embed_task(app, job) -> dict | None:
    """Result-backend meta of a batch whose embed task is running now (has the child's pid)."""
    for ref in job.batches:
        meta = app.backend.get_task_meta(batch_task_ids(job, ref.n)[0])
        if meta["status"] == "STARTED":
            return meta
    return None


def test_local_job_indexes_every_record_once(cluster, cord_sample, tmp_path):
    path, ids = cord_sample
    cluster.worker(QUEUE, "embed")
    cluster.worker(WRITE_QUEUE, "writer")
    job = submit_job(cluster.app, str(path), Target("local", str(tmp_path / "ix"), "all-MiniLM-L6-v2"), batch_size=20)
    st = wait_finished(cluster.app, job.id)
    assert (st.done, st.failed, st.documents, st.rejected) == (3, 0, 60, 0)
    assert st.docs_per_s and st.docs_per_s > 0 and st.eta_s == 0
    assert_indexed_exactly(tmp_path / "ix", ids)
    # task messages carry references, never documents
    meta = cluster.app.backend.get_task_meta(batch_task_ids(job, 0)[0])
    assert set(meta["args"][1]) == {"path", "fmt", "start", "end", "first_line", "records", "n"}


def test_sigkill_mid_batch_then_restart_indexes_each_document_once(cluster, cord_sample, tmp_path):
    """(a) Kill a pool child mid-batch (requeued at once: task_reject_on_worker_lost), then SIGKILL the whole
    worker mid-batch and start a new one (redelivered after the visibility timeout)."""
    path, ids = cord_sample
    embed = cluster.worker(QUEUE, "embed")
    cluster.worker(WRITE_QUEUE, "writer")
    job = submit_job(cluster.app, str(path), Target("local", str(tmp_path / "ix"), "all-MiniLM-L6-v2"), batch_size=10)
    meta = wait_for(lambda: started_embed_task(cluster.app, job), 120, "a batch to start")
    os.kill(meta["result"]["pid"], signal.SIGKILL)  # the pool child running the batch
    wait_for(lambda: job_status(cluster.app, job.id).done >= 2, 120, "two batches done after the child was killed")
    meta = wait_for(lambda: started_embed_task(cluster.app, job), 60, "another batch to start")
    embed.kill()  # the whole worker, mid-batch
    killed_at = time.monotonic()
    cluster.worker(QUEUE, "embed2")
    st = wait_finished(cluster.app, job.id)
    assert (st.done, st.failed, st.documents) == (6, 0, 60)
    assert time.monotonic() - killed_at >= VISIBILITY  # the killed batch waited for the visibility timeout
    assert_indexed_exactly(tmp_path / "ix", ids)
    assert "WorkerLostError" in embed.log_text() or "SIGKILL" in embed.log_text()


def test_redis_restart_mid_run_completes(cluster, cord_sample, tmp_path):
    """(b) Redis goes down and comes back (append-only file) while batches are queued and running."""
    path, ids = cord_sample
    cluster.worker(QUEUE, "embed")
    cluster.worker(WRITE_QUEUE, "writer")
    job = submit_job(cluster.app, str(path), Target("local", str(tmp_path / "ix"), "all-MiniLM-L6-v2"), batch_size=10)
    wait_for(lambda: job_status(cluster.app, job.id).done >= 1, 120, "a first batch done")
    cluster.redis.restart(down_s=2)
    st = wait_finished(cluster.app, job.id)
    assert (st.done, st.failed, st.documents) == (6, 0, 60)
    assert_indexed_exactly(tmp_path / "ix", ids)


def test_malformed_records_are_quarantined_with_their_locations(cluster, cord_sample, tmp_path):
    """(c) Bad records mixed into the input go to the dead-letter store; every valid record is indexed."""
    path, ids = cord_sample
    lines = path.read_bytes().splitlines(keepends=True)[:20]
    bad = {
        3: b'{"_id": "broken", "title": \n',  # malformed JSON
        8: b'{"_id": "empty", "title": "", "text": ""}\n',  # no text
        12: b'{"_id": "bytes", "title": "caf\xe9"}\n',  # not UTF-8
        15: b'{"title": "no id", "text": "x"}\n',  # missing id
    }
    mixed: list[bytes] = []
    for line in lines:
        while len(mixed) + 1 in bad:
            mixed.append(bad[len(mixed) + 1])
        mixed.append(line)
    corpus = tmp_path / "mixed.jsonl"
    corpus.write_bytes(b"".join(mixed))
    cluster.worker(QUEUE, "embed")
    cluster.worker(WRITE_QUEUE, "writer")
    env = {**os.environ, "BROKER_URL": cluster.redis.url, "USE_TF": "0"}
    cli = [sys.executable, "-m", "es_biomed.cli"]
    sub = subprocess.run(
        [*cli, "ingest", "submit", str(corpus), "--index", str(tmp_path / "ix"), "--batch-size", "8", "--wait"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert sub.returncode == 3, sub.stderr  # finished, with quarantined records
    assert "3/3 batches done, 0 failed" in sub.stdout and "20 documents written, 4 records quarantined" in sub.stdout
    job_id = sub.stdout.split()[1].rstrip(":")
    rejects = DeadLetterStore(cluster.app.backend.client, job_id).records()
    assert [(r["file"], r["line"], r["field"]) for r in rejects] == [
        (str(corpus), 3, "(record)"),
        (str(corpus), 8, "title/abstract/body"),
        (str(corpus), 12, "(record)"),
        (str(corpus), 15, "id"),
    ]
    assert "malformed JSON" in rejects[0]["error"] and "not valid UTF-8" in rejects[2]["error"]
    shown = subprocess.run(
        [*cli, "ingest", "status", job_id, "--rejects"], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert shown.returncode == 0 and shown.stdout.count('"line"') == 4
    assert_indexed_exactly(tmp_path / "ix", ids[:20])


def test_transient_backend_failure_is_retried(cluster, cord_sample, tmp_path, minilm):
    """(d) Another writer holds the embedded index: write batches fail with IndexLockedError, are retried with
    backoff, and succeed once the lock is released."""
    path, ids = cord_sample
    index = tmp_path / "ix"
    holder = EmbeddedIndex.create(index, minilm.info).writer()  # the competing writer
    writer_worker = cluster.worker(WRITE_QUEUE, "writer")
    cluster.worker(QUEUE, "embed")
    job = submit_job(cluster.app, str(path), Target("local", str(index), "all-MiniLM-L6-v2"), batch_size=20)
    wait_for(lambda: "IndexLockedError" in writer_worker.log_text(), 120, "a write to hit the lock")
    assert job_status(cluster.app, job.id).failed == 0
    holder.close()
    st = wait_finished(cluster.app, job.id)
    assert (st.done, st.failed, st.documents) == (3, 0, 60)
    assert "Retry in" in writer_worker.log_text()
    assert_indexed_exactly(index, ids)


def test_es_workers_bulk_write_and_retry_an_overloaded_cluster(cluster, cord_sample, minilm, tmp_path):
    """(d, Elasticsearch) Each worker bulk-writes to the cluster (here a local stand-in speaking ES 9 HTTP);
    the cluster answers 503 to more bulk requests than the client retries, so the batch fails transiently, is
    retried by Celery with backoff, and succeeds. Credentials stay in the workers' environment."""
    from tests.fake_es import FakeES, serve

    path, ids = cord_sample
    state = FakeES(minilm.dims, minilm.fingerprint, unavailable_bulks=5)
    state.alias_exists = True  # `es-biomed es setup` was run
    server, url = serve(state)
    try:
        env_extra = {"ES_URL": url, "ES_USERNAME": "elastic", "ES_PASSWORD": "s3cret-pw-123"}
        w = Worker({**cluster.env, **env_extra}, QUEUE, "es-worker", tmp_path).start()
        try:
            job = submit_job(cluster.app, str(path), Target("es", "es-biomed", "all-MiniLM-L6-v2"), batch_size=30)
            st = wait_finished(cluster.app, job.id)
            assert (st.done, st.failed, st.documents) == (2, 0, 60)
            assert sorted(state.docs) == sorted(ids) and len(state.docs) == 60
            assert all(len(d["embedding"]) == 384 for d in state.docs.values())
            assert "Retry in" in w.log_text() and "TransientBackendError" in w.log_text()
            assert "s3cret-pw-123" not in w.log_text()
            client = cluster.app.backend.client
            assert not any(b"s3cret-pw-123" in (client.dump(k) or b"") for k in client.keys("*"))
        finally:
            w.stop()
    finally:
        server.shutdown()


def test_failed_batches_are_reported_and_retried(cluster, cord_sample, tmp_path, toy_encoder):
    """A permanent error (the index was built with another encoder) fails every batch without retries; status
    names the error; once the cause is fixed, `retry-failed` resubmits exactly the failed batches."""
    import shutil

    from es_biomed.ingest.jobs import retry_failed

    path, ids = cord_sample
    index = tmp_path / "ix"
    EmbeddedIndex.create(index, toy_encoder.info)  # 4-dim toy index: MiniLM's 384-dim vectors do not fit
    cluster.worker(QUEUE, "embed")
    cluster.worker(WRITE_QUEUE, "writer")
    job = submit_job(cluster.app, str(path), Target("local", str(index), "all-MiniLM-L6-v2"), batch_size=30)
    st = wait_finished(cluster.app, job.id)
    assert (st.done, st.failed, st.documents) == (0, 2, 0)
    assert [f["batch"] for f in st.failures] == [0, 1]
    assert all(f["error"].startswith("EncoderMismatchError") for f in st.failures), st.failures
    shutil.rmtree(index)  # the fix: drop the wrong index
    assert retry_failed(cluster.app, job.id) == [0, 1]
    st = wait_finished(cluster.app, job.id)
    assert (st.done, st.failed, st.documents) == (2, 0, 60)
    assert_indexed_exactly(index, ids)
    assert retry_failed(cluster.app, job.id) == []
