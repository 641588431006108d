"""The faults a production cluster meets, on a real 3-node OpenSearch cluster (3 shards, 1 replica), each with exact
counts and ids (issue 22). Celery workers on a real Redis ingest real CORD-19 records through the one cluster backend;
queries go through the :class:`~es_biomed.search.Searcher`, the path every client takes.

1. a data node SIGKILLed at about a third of an ingest, restarted later: every valid id once, nothing lost;
2. a node SIGKILLed under query load: no request fails for the caller, and once the cluster is yellow again every
   query returns the healthy ranking;
3. a rolling restart of every node while ingest and queries run: every id once, no query fails;
4. a model change with zero downtime: the corpus re-embedded with another encoder into the next version, the alias
   swapped while queries run: no query fails and none pairs a query vector with the other encoder's documents;
5. backpressure: a node with a write pool of one thread and a queue of one answers real 429s to two workers; every
   document arrives once and the throttling shows in the job's status;
6. Redis restarted and a worker SIGKILLed mid-ingest into the cluster: every id once.

The cluster comes from ``OPENSEARCH_CLUSTER_URLS`` (``tests/engines/opensearch/cluster.sh start``; ``.ci/run`` sets
it); its nodes are killed and restarted through that script, and left whole.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("celery")

from es_biomed.backends.cluster import ClusterBackend, ClusterConfig  # noqa: E402
from es_biomed.backends.cluster.connection import PIN_RECHECK_SECONDS  # noqa: E402
from es_biomed.corpus.readers import iter_documents  # noqa: E402
from es_biomed.encode.loading import load_document_encoder, load_encoder  # noqa: E402
from es_biomed.ingest.jobs import Target, job_status, submit_job  # noqa: E402
from es_biomed.ingest.queue import QUEUE, make_app  # noqa: E402
from es_biomed.search import Searcher  # noqa: E402
from tests.celery_workers import VISIBILITY, Worker, wait_for  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

ENGINE = "opensearch"
QUERIES = [
    "coronavirus spike protein receptor binding",
    "influenza vaccine effectiveness in the elderly",
    "respiratory syncytial virus infection in children",
    "antiviral treatment of SARS",
    "transmission of MERS coronavirus between camels and humans",
]


def cluster_sh(*args: str) -> str:
    out = subprocess.run(
        [str(REPO / "tests" / "engines" / ENGINE / "cluster.sh"), *args], capture_output=True, text=True, timeout=420
    )
    assert out.returncode == 0, f"cluster.sh {' '.join(args)}: {out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def urls() -> list[str]:
    var = "OPENSEARCH_CLUSTER_URLS"
    if not os.environ.get(var):
        msg = f"no OpenSearch cluster: {var} is not set (`tests/engines/opensearch/cluster.sh start` starts 3 nodes)"
        if os.environ.get("ES_BIOMED_LIVE_REQUIRED"):
            pytest.fail(msg)
        pytest.skip(msg)
    started = REPO / ".engines" / f"{ENGINE}-cluster" / "urls"
    if not started.exists() or started.read_text().strip() != os.environ[var]:
        pytest.skip(f"{var} is not the cluster tests/engines/{ENGINE}/cluster.sh started: these tests kill its nodes")
    out = os.environ[var].split(",")
    assert len(out) == 3, "the fault tests need 3 nodes"
    return out


@pytest.fixture(scope="module")
def records(shared_data, tmp_path_factory) -> tuple[Path, list[str]]:
    """The first 300 CORD-19 records as BEIR JSONL."""
    lines = (shared_data / "cord19" / "merged_dedup_cord_uid.jsonl").read_bytes().splitlines(keepends=True)[:300]
    out = tmp_path_factory.mktemp("cord") / "corpus.jsonl"
    out.write_bytes(b"".join(lines))
    return out, [json.loads(x)["_id"] for x in lines]


@pytest.fixture(scope="module")
def encoder():
    return load_document_encoder("all-MiniLM-L6-v2")


def new_backend(urls: list[str], encoder, **kw) -> ClusterBackend:  # type: ignore[no-untyped-def]
    cfg = ClusterConfig(",".join(urls), engine=ENGINE, alias=f"es-biomed-test-fault-{uuid.uuid4().hex[:6]}")
    be = ClusterBackend.connect(dataclasses.replace(cfg, request_timeout=30))
    be.setup(
        encoder.info, analyzer="english" if be.capabilities().english_analyzer else "standard", shards=3, replicas=1
    )
    return be


def health(be: ClusterBackend, **wait: str) -> dict:
    return dict(be.client.cluster.health(index=be.alias, timeout="180s", request_timeout=190, **wait))


def all_ids(be: ClusterBackend) -> list[str]:
    be.client.indices.refresh(index=be.alias)
    resp = be.client.search(index=be.alias, body={"query": {"match_all": {}}, "size": 10_000, "_source": False})
    return [h["_id"] for h in resp["hits"]["hits"]]


class Workers:
    """A private Redis and Celery workers pointed at the cluster's URL list; everything stopped by PID."""

    def __init__(self, tmp: Path, urls: list[str], **extra_env: str) -> None:
        self.tmp, self.redis = tmp, RedisServer(tmp / "redis").start()
        self.env = {
            **os.environ,
            "BROKER_URL": self.redis.url,
            "ES_BIOMED_VISIBILITY_TIMEOUT": str(VISIBILITY),
            "ES_BIOMED_RESTORE_INTERVAL": "1",
            "USE_TF": "0",
            "PYTHONPATH": str(REPO),
            "OPENSEARCH_URL": ",".join(urls),
            **extra_env,
        }
        self.app = make_app(self.env)
        self.started: list[Worker] = []

    def start(self, name: str, concurrency: int = 1) -> Worker:
        w = Worker(self.env, QUEUE, name, self.tmp, concurrency=concurrency).start()
        self.started.append(w)
        return w

    def submit(self, path: Path, alias: str, batch_size: int = 20):  # type: ignore[no-untyped-def]
        return submit_job(self.app, str(path), Target("opensearch", alias, "all-MiniLM-L6-v2"), batch_size=batch_size)

    def finished(self, job_id: str, timeout: float = 600):  # type: ignore[no-untyped-def]
        return wait_for(lambda: (s := job_status(self.app, job_id)).finished and s, timeout, "the job to finish")

    def close(self) -> None:
        for w in self.started:
            w.stop()
        self.redis.stop()


@pytest.fixture
def workers(tmp_path, urls):  # type: ignore[no-untyped-def]
    pool = Workers(tmp_path, urls)
    yield pool
    pool.close()


class BackgroundThreads:
    """Threads running ``self._run(i)`` in a loop until the ``with`` block ends (joined, at most 60 s each)."""

    def __init__(self, threads: int) -> None:
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, i: int) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):  # type: ignore[no-untyped-def]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


class NoisyNeighbour(BackgroundThreads):
    """Threads sending bulks of small documents into their own index until closed (their own 429s ignored)."""

    def __init__(self, client, threads: int = 4, docs: int = 200) -> None:  # type: ignore[no-untyped-def]
        self.client, self.index, self.sent = client, f"noise-{uuid.uuid4().hex[:8]}", 0
        self.body = "".join(f'{{"index":{{}}}}\n{{"n":{i},"text":"noise {i}"}}\n' for i in range(docs))
        super().__init__(threads)

    def _run(self, i: int) -> None:
        while not self.stop.is_set():
            try:
                self.client.bulk(index=self.index, body=self.body, request_timeout=30)
                self.sent += 1
            except Exception:  # noqa: BLE001, S112 - a rejected or failed noise bulk is noise
                continue

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.client.indices.delete(index=self.index, ignore_unavailable=True)


class QueryLoad(BackgroundThreads):
    """Threads searching the alias through a Searcher in a loop; every request's outcome is kept."""

    def __init__(self, be: ClusterBackend, threads: int = 2, expected: dict | None = None) -> None:
        self.be, self.expected = be, expected
        self.outcomes: list[tuple[float, str, str]] = []  # (start time, query, "ok" | error)
        self.rankings: list[tuple[str, list[tuple[str, float]], float]] = []  # (query, ranking, start time)
        super().__init__(threads)

    def _run(self, i: int) -> None:
        searcher = Searcher(self.be)
        n = i
        while not self.stop.is_set():
            q = QUERIES[n % len(QUERIES)]
            n += 1
            t0 = time.monotonic()
            try:
                self.rankings.append((q, ranking(searcher.search(q, k=10, with_sources=False).hits), t0))
                self.outcomes.append((t0, q, "ok"))
            except Exception as exc:  # noqa: BLE001 - every failure the caller would see is counted
                self.outcomes.append((t0, q, f"{type(exc).__name__}: {exc}"[:300]))
            time.sleep(0.05)

    @property
    def failed(self) -> list[tuple[float, str, str]]:
        return [o for o in self.outcomes if o[2] != "ok"]


def ranking(hits) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    """(id, score) best first, equal scores in id order: a primary and its replica may break ties apart."""
    return sorted(((h.doc_id, round(h.score, 3)) for h in hits), key=lambda x: (-x[1], x[0]))


def healthy_rankings(be: ClusterBackend) -> dict[str, list[tuple[str, float]]]:
    s = Searcher(be)
    return {q: ranking(s.search(q, k=10, with_sources=False).hits) for q in QUERIES}


def test_node_killed_mid_ingest_every_id_once(urls, records, encoder, workers):
    path, ids = records
    be = new_backend(urls, encoder)
    killed = False
    try:
        workers.start("w1")
        workers.start("w2")
        job = workers.submit(path, be.alias)  # 15 batches of 20
        wait_for(lambda: job_status(workers.app, job.id).done >= 5, 600, "a third of the batches")
        cluster_sh("kill", "2")
        killed = True
        wait_for(lambda: job_status(workers.app, job.id).done >= 10, 600, "two thirds of the batches")
        cluster_sh("restart", "2")
        killed = False
        st = workers.finished(job.id)
        assert health(be, wait_for_status="green")["status"] == "green"
        got = all_ids(be)
        assert sorted(got) == sorted(ids) and len(got) == len(set(got)) == 300
        assert (st.failed, st.documents) == (0, 300), st
        print(f"node killed mid-ingest: 300 records in, {len(got)} documents out, {len(got) - len(set(got))} twice")
    finally:
        if killed:
            cluster_sh("restart", "2")
        be.drop()


def test_node_killed_under_query_load_no_request_fails(urls, records, encoder):
    path, ids = records
    be = new_backend(urls, encoder)
    killed = False
    try:
        report = be.index_documents(iter_documents(str(path)), encoder)
        assert report.ok == 300 and health(be, wait_for_status="green")["status"] == "green"
        before = healthy_rankings(be)
        with QueryLoad(be) as load:
            time.sleep(4)
            t_kill = time.monotonic()
            cluster_sh("kill", "3")
            killed = True
            yellow = health(be, wait_for_nodes="2")
            t_yellow = time.monotonic()
            time.sleep(4)
        assert yellow["number_of_nodes"] == 2 and yellow["status"] in ("yellow", "green")
        assert load.failed == [], load.failed[:5]
        after_yellow = [(q, hits) for q, hits, t in load.rankings if t > t_yellow]
        assert after_yellow and all(hits == before[q] for q, hits in after_yellow)
        during = [(q, hits) for q, hits, t in load.rankings if t_kill <= t <= t_yellow]
        assert all(hits == before[q] for q, hits in during)  # nothing short or partial reached the caller
        print(
            f"query load: {len(load.outcomes)} requests, {len(load.failed)} failed, {len(during)} between the kill "
            f"and yellow ({t_yellow - t_kill:.1f} s), {be.shard_retries} shard retries"
        )
        cluster_sh("restart", "3")
        killed = False
        assert health(be, wait_for_status="green")["status"] == "green" and healthy_rankings(be) == before
    finally:
        if killed:
            cluster_sh("restart", "3")
        be.drop()


def test_rolling_restart_while_ingest_and_queries_run(urls, records, encoder, workers):
    path, ids = records
    be = new_backend(urls, encoder)
    try:
        first = list(iter_documents(str(path)))[:100]
        be.index_documents(first, encoder)
        workers.start("w1")
        with QueryLoad(be) as load:
            job = workers.submit(path, be.alias, batch_size=10)  # all 300 (the first 100 again: overwritten)
            for node in ("1", "2", "3"):
                cluster_sh("restart", node)  # stops it by PID, starts it on its data, waits until it rejoined
                health(be, wait_for_status="green")
            st = workers.finished(job.id)
        got = all_ids(be)
        assert sorted(got) == sorted(ids) and len(got) == len(set(got)) == 300
        assert st.failed == 0 and load.failed == [], load.failed[:5]
        print(f"rolling restart: {len(load.outcomes)} queries, none failed; job {st.done} batches")
    finally:
        be.drop()


def test_model_change_with_zero_downtime(urls, records, encoder):
    path, ids = records
    be = new_backend(urls, encoder)
    other = load_encoder("biomed-minilm")  # another encoder: another identity
    assert other.fingerprint != encoder.fingerprint
    try:
        be.index_documents(iter_documents(str(path)), encoder)
        before = healthy_rankings(be)
        with QueryLoad(be) as load:
            time.sleep(2)
            result = be.reembed(iter_documents(str(path)), other)
            t_swap = time.monotonic()
            time.sleep(3)
        assert result["to"].endswith("-v2") and result["written"] == 300
        assert load.failed == [], load.failed[:5]
        # after the swap every answer is the new encoder's ranking: compare with a searcher built afterwards
        fresh = healthy_rankings(be)
        # searches started after the swap and a pin check (every second) rank with the new encoder; those started
        # before it ran, whole, on the old index with the old encoder: either way never the two mixed
        after = [(q, hits) for q, hits, t in load.rankings if t > t_swap + PIN_RECHECK_SECONDS + 0.2]
        wrong = [(q, hits, fresh[q]) for q, hits in after if hits != fresh[q]]
        assert after and not wrong, (len(wrong), len(after), wrong[:2])
        # and every answer, whenever it ran, is one encoder's ranking over its own documents: a query vector of
        # one encoder sent to the other's documents ranks a third way (two searchers share this backend: the
        # second one's old vectors once went to the new index the first one had pinned)
        mixed = [(q, hits) for q, hits, _ in load.rankings if hits not in (before[q], fresh[q])]
        assert mixed == [], (len(mixed), len(load.rankings), mixed[:2])
        assert Searcher(be).encoder.fingerprint == other.fingerprint
        assert sorted(all_ids(be)) == sorted(ids)
        print(f"model change: {len(load.outcomes)} queries during the re-embed and swap, none failed")
    finally:
        be.drop()


def test_backpressure_real_429s_every_document_once(tmp_path, urls, records, encoder):
    """A fourth node started apart (not joined to the cluster) with a write pool of one thread and a queue of one."""
    path, ids = records
    script = REPO / "tests" / "engines" / ENGINE / "node.sh"
    state = tmp_path / "tiny-node"
    env = {**os.environ, "OPENSEARCH_HTTP_PORTS": "9790-9799", "OPENSEARCH_TRANSPORT_PORTS": "9890-9899",
           "OPENSEARCH_HEAP": "512m", "OPENSEARCH_CDS": "ro"}  # fmt: skip
    out = subprocess.run(
        [str(script), "start", str(state), "-Ethread_pool.write.size=1", "-Ethread_pool.write.queue_size=1"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    if out.returncode != 0:
        pytest.fail(f"the tiny-pool node did not start: {out.stderr[-2000:]}")
    url = out.stdout.strip().splitlines()[-1]
    pool = Workers(tmp_path, [url])
    try:
        be = ClusterBackend.connect(
            ClusterConfig(url, engine=ENGINE, alias=f"es-biomed-test-bp-{uuid.uuid4().hex[:6]}")
        )
        be.setup(encoder.info, analyzer="english" if be.capabilities().english_analyzer else "standard")
        pool.start("w1", concurrency=2)
        pool.start("w2", concurrency=2)
        job = pool.submit(path, be.alias, batch_size=10)
        # the workers alone spend most of their time embedding (2 cores), so their bulks rarely meet each other
        # in the one-slot queue; a noisy neighbour (other clients' bulks into another index) keeps the write pool
        # busy until the job has met a real 429, then stops so that every retry gets through
        with NoisyNeighbour(be.client) as noise:
            wait_for(lambda: job_status(pool.app, job.id).throttled > 0 or job_status(pool.app, job.id).finished,
                     300, "a throttled bulk")  # fmt: skip
        st = pool.finished(job.id)
        assert noise.sent > 0
        got = all_ids(be)
        assert sorted(got) == sorted(ids) and len(got) == len(set(got)) == 300
        assert st.failed == 0 and st.throttled > 0, st
        print(f"backpressure: {st.throttled} documents throttled (429) and sent again; every id once")
    finally:
        pool.close()
        subprocess.run([str(script), "stop", str(state)], capture_output=True, text=True, env=env)


def test_redis_restarted_and_a_worker_killed_mid_ingest(urls, records, encoder, workers):
    path, ids = records
    be = new_backend(urls, encoder)
    try:
        w1 = workers.start("w1")
        workers.start("w2")
        job = workers.submit(path, be.alias, batch_size=10)
        wait_for(lambda: job_status(workers.app, job.id).done >= 5, 600, "five batches")
        workers.redis.restart(down_s=2)
        w1.kill()
        workers.start("w3")
        st = workers.finished(job.id, timeout=900)
        got = all_ids(be)
        assert sorted(got) == sorted(ids) and len(got) == len(set(got)) == 300
        assert (st.failed, st.documents >= 300) == (0, True), st
        print(f"redis restarted, worker killed: 300 records in, {len(got)} out, {len(got) - len(set(got))} twice")
    finally:
        be.drop()
