"""A node that dies mid-bulk (runs last in the live tier: it stops and restarts the node).

The node is stopped by its PID while a bulk ingest is running. The backend must raise
:class:`BulkInterruptedError` with the documents written so far; every acknowledged document must still be there
after the restart (the translog is fsynced per request); and running the same ingest again completes the
index without duplicates (deterministic ``_id``).
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
import uuid

import pytest

from es_biomed.backends.cluster import BulkInterruptedError, ClusterBackend
from es_biomed.corpus import iter_documents
from tests.conftest import REPO, KeywordEncoder
from tests.live.conftest import ENGINES

SAMPLE = REPO / "data" / "scifact-sample"


class SlowEncoder(KeywordEncoder):
    """The toy encoder plus a constant axis (cosine refuses zero vectors), 50 ms per batch, so the ingest is still
    running when the node goes."""

    def __init__(self) -> None:
        super().__init__(["aspirin", "fever", "cancer", "cell"], name="toy-slow")
        self.dims = 5

    def _embed_batch(self, texts):  # type: ignore[no-untyped-def]
        time.sleep(0.05)
        out = super()._embed_batch(texts)  # dims columns, the vocabulary fills the first four
        out[:, -1] = 1.0
        return out


def _node(engine: str, command: str) -> str:
    script = REPO / "tests" / "engines" / engine / "node.sh"
    out = subprocess.run([str(script), command], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def test_node_killed_mid_bulk_then_rerun_completes_without_duplicates(engine, cluster_config, text_analyzer):
    prefix, _ = ENGINES[engine]
    state_url = REPO / ".engines" / engine / "url"
    if not state_url.exists() or state_url.read_text().strip() != cluster_config.url:
        pytest.skip(f"{prefix}_URL is not a node started by tests/engines/{engine}/node.sh: this test stops it")
    enc = SlowEncoder()
    docs = list(iter_documents(SAMPLE))
    cfg = dataclasses.replace(cluster_config, alias=f"es-biomed-test-kill-{uuid.uuid4().hex[:6]}", request_timeout=5)
    be = ClusterBackend.connect(cfg)
    be.setup(enc.info, analyzer=text_analyzer)
    outcome: dict[str, object] = {}

    def ingest() -> None:
        try:
            outcome["report"] = be.index_documents(docs, enc, batch_size=10, refresh=False)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc

    worker = threading.Thread(target=ingest)
    worker.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        be.client.indices.refresh(index=be.alias)
        if be.count() >= 100:
            break
        time.sleep(0.2)
    _node(engine, "stop")  # by PID (TERM, then KILL after 30 s)
    worker.join(timeout=180)
    try:
        err = outcome.get("error")
        assert isinstance(err, BulkInterruptedError), outcome
        written = err.report.written_ids
        assert 100 <= len(written) < len(docs) and len(set(written)) == len(written)
        assert "went away during the bulk ingest" in str(err) and str(len(written)) in str(err)
    finally:
        url = _node(engine, "start")
    be2 = ClusterBackend.connect(dataclasses.replace(cfg, url=url, request_timeout=30))
    try:
        be2.client.indices.refresh(index=be2.alias)
        survived = be2.get(written)
        assert set(survived) == set(written)  # every acknowledged document is still there
        report = be2.index_documents(docs, enc, batch_size=100)
        assert report.ok == len(docs) and not report.failed
        assert be2.count() == len(docs)
        resp = be2.client.search(index=be2.alias, body={"size": 1000, "_source": False, "query": {"match_all": {}}})
        ids = [h["_id"] for h in resp["hits"]["hits"]]
        assert len(ids) == len(set(ids)) == len(docs)
    finally:
        be2.drop()
