"""Celery workers writing into the real engine nodes (issue 22): a real Redis, real worker processes, the shipped
MiniLM and real CORD-19 records, through the one cluster backend, on OpenSearch and on Elasticsearch.

* every valid record is indexed exactly once (deterministic ``_id``), the malformed one is in the dead-letter store;
* the node is stopped by its PID mid-ingest and started again on its data: the workers retry with backoff and the
  job completes with every id once (runs late in the live tier: it restarts the node, as ``test_zz_node_restart``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
import uuid

import pytest

pytest.importorskip("celery")

from es_biomed.backends.cluster import ClusterBackend  # noqa: E402
from es_biomed.ingest.jobs import DeadLetterStore, Target, job_status, submit_job  # noqa: E402
from es_biomed.ingest.queue import QUEUE  # noqa: E402
from tests.celery_workers import VISIBILITY, Worker, wait_for  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.live.conftest import ENGINES  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

TARGET = {"opensearch": "opensearch", "elasticsearch": "es"}


@pytest.fixture
def corpus(shared_data, tmp_path):
    """The first 120 CORD-19 records as BEIR JSONL, with one malformed line in the middle."""
    lines = (shared_data / "cord19" / "merged_dedup_cord_uid.jsonl").read_bytes().splitlines(keepends=True)[:120]
    out = tmp_path / "corpus.jsonl"
    out.write_bytes(b"".join(lines[:57]) + b'{"_id": "bad-1", "text": \n' + b"".join(lines[57:]))
    return out, {json.loads(x)["_id"] for x in lines}


@pytest.fixture
def workers(tmp_path, cluster_config):
    """A private Redis and a factory of workers whose environment points at this engine's node."""
    redis = RedisServer(tmp_path / "redis").start()
    prefix, _ = ENGINES[cluster_config.engine]
    env = {
        **os.environ,
        "BROKER_URL": redis.url,
        "ES_BIOMED_VISIBILITY_TIMEOUT": str(VISIBILITY),
        "ES_BIOMED_RESTORE_INTERVAL": "1",
        "USE_TF": "0",
        "PYTHONPATH": str(REPO),
        f"{prefix}_URL": cluster_config.url,
    }
    started: list[Worker] = []

    class Pool:
        def __init__(self) -> None:
            from es_biomed.ingest.queue import make_app

            self.app = make_app(env)
            self.redis = redis

        def start(self, name: str) -> Worker:
            w = Worker(env, QUEUE, name, tmp_path).start()
            started.append(w)
            return w

    yield Pool()
    for w in started:
        w.stop()
    redis.stop()


def _backend(cluster_config, text_analyzer, minilm):
    cfg = dataclasses.replace(cluster_config, alias=f"es-biomed-test-workers-{uuid.uuid4().hex[:6]}")
    be = ClusterBackend.connect(cfg)
    be.setup(minilm.info, analyzer=text_analyzer)
    return be


def _ids(be: ClusterBackend) -> list[str]:
    be.client.indices.refresh(index=be.alias)
    resp = be.client.search(index=be.alias, body={"query": {"match_all": {}}, "size": 1000, "_source": False})
    return [h["_id"] for h in resp["hits"]["hits"]]


def test_workers_index_every_valid_record_exactly_once(engine, cluster_config, text_analyzer, minilm, corpus, workers):
    path, ids = corpus
    be = _backend(cluster_config, text_analyzer, minilm)
    try:
        workers.start("w1")
        job = submit_job(workers.app, str(path), Target(TARGET[engine], be.alias, "all-MiniLM-L6-v2"), batch_size=20)
        st = wait_for(lambda: (s := job_status(workers.app, job.id)).finished and s, 300, "the job to finish")
        got = _ids(be)
        assert sorted(got) == sorted(ids) and len(got) == len(set(got)) == 120
        assert (st.done, st.failed, st.documents, st.rejected) == (len(job.batches), 0, 120, 1)
        (rec,) = DeadLetterStore(workers.app.backend.client, job.id).records()
        assert rec["file"] == str(path) and rec["line"] == 58
    finally:
        be.drop()


def _node(engine: str, command: str) -> None:
    out = subprocess.run(
        [str(REPO / "tests" / "engines" / engine / "node.sh"), command], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]


def test_node_stopped_mid_ingest_the_job_completes_every_id_once(
    engine, cluster_config, text_analyzer, minilm, corpus, workers
):
    state_url = REPO / ".engines" / engine / "url"
    if not state_url.exists() or state_url.read_text().strip() != cluster_config.url:
        pytest.skip(
            f"{ENGINES[engine][0]}_URL is not a node started by tests/engines/{engine}/node.sh: it is restarted"
        )
    path, ids = corpus
    be = _backend(cluster_config, text_analyzer, minilm)
    try:
        workers.start("w1")
        job = submit_job(workers.app, str(path), Target(TARGET[engine], be.alias, "all-MiniLM-L6-v2"), batch_size=10)
        wait_for(lambda: job_status(workers.app, job.id).done >= 2, 300, "two batches written")
        t0 = time.monotonic()
        _node(engine, "stop")  # by PID, mid-ingest
        time.sleep(3)
        _node(engine, "start")  # the same data directory and port
        down = time.monotonic() - t0
        st = wait_for(lambda: (s := job_status(workers.app, job.id)).finished and s, 600, "the job to finish")
        got = _ids(be)
        assert sorted(got) == sorted(ids) and len(got) == len(set(got)), (len(got), len(set(got)))
        assert (st.failed, st.documents) == (0, 120), st
        print(f"{engine}: node down {down:.1f} s; job finished with {st.done} batches, {st.documents} documents")
    finally:
        be.drop()
