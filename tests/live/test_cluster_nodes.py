"""A real 3-node cluster (``tests/engines/<engine>/cluster.sh start``): one node is SIGKILLed and the multi-URL
client keeps answering from the others, then the node rejoins and the cluster is green again.

The URLs come from ``OPENSEARCH_CLUSTER_URLS`` / ``ES_CLUSTER_URLS`` (the last line ``cluster.sh start`` prints;
``.ci/run`` sets them). Unset: the test skips, or fails under ``ES_BIOMED_LIVE_REQUIRED=1``. It kills and restarts
node 2 through ``cluster.sh``, so it only runs on the cluster that script started (it leaves it whole again).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import time
import uuid

import pytest

from es_biomed.backends.cluster import ClusterBackend, ClusterConfig
from es_biomed.corpus import iter_documents
from es_biomed.query import SearchPlan
from tests.conftest import REPO
from tests.live.conftest import ENGINES

SAMPLE = REPO / "data" / "scifact-sample"
QUERIES = ["Aspirin inhibits the production of PGE2.", "BRCA1 mutations increase breast cancer risk."]
N_DOCS = 30


def _cluster_sh(engine: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = REPO / "tests" / "engines" / engine / "cluster.sh"
    out = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=420)
    assert out.returncode == 0, f"cluster.sh {' '.join(args)}: {out.stderr[-3000:]}"
    return out


@pytest.fixture(params=list(ENGINES))
def multi_node(request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    engine = str(request.param)
    prefix, _ = ENGINES[engine]
    var = f"{prefix}_CLUSTER_URLS"
    if not os.environ.get(var):
        msg = (
            f"no {engine} cluster: {var} is not set (`tests/engines/{engine}/cluster.sh start` starts 3 nodes and "
            f"prints their URLs: export {var}=<that line>)"
        )
        if os.environ.get("ES_BIOMED_LIVE_REQUIRED"):
            pytest.fail(msg)
        pytest.skip(msg)
    urls = os.environ[var].split(",")
    started = REPO / ".engines" / f"{engine}-cluster" / "urls"
    if not started.exists() or started.read_text().strip() != os.environ[var]:
        pytest.skip(f"{var} is not the cluster tests/engines/{engine}/cluster.sh started: this test kills its node 2")
    return engine, urls


def _ranked(be: ClusterBackend, encoder) -> dict[str, list[tuple[str, float]]]:  # type: ignore[no-untyped-def]
    """Each query's hits as (id, score), ties in id order (a replica may break ties in another order)."""
    out = {}
    for q in QUERIES:
        for mode in ("bm25", "dense"):
            vec = encoder.encode_queries([q])[0] if mode == "dense" else None
            hits = be.search(SearchPlan(q, mode=mode, k=10), vec).hits
            out[f"{mode}:{q}"] = sorted(((h.doc_id, round(h.score, 4)) for h in hits), key=lambda x: (-x[1], x[0]))
    return out


def _health(be: ClusterBackend, **wait: str) -> dict:
    """The index's health once ``wait`` holds (at most 120 s; the server's ``timeout``, not the client's)."""
    if be.engine == "opensearch":  # opensearch-py reads a bare `timeout` as the client's own
        return dict(be.client.cluster.health(index=be.alias, timeout="120s", request_timeout=130, **wait))
    return dict(be.client.options(request_timeout=130).cluster.health(index=be.alias, timeout="120s", **wait))


def test_a_killed_node_is_skipped_and_rejoins(multi_node, cached):  # type: ignore[no-untyped-def]
    engine, urls = multi_node
    n = len(urls)
    assert n >= 2, "a replica needs a second node"
    cfg = ClusterConfig(",".join(urls), engine=engine, alias=f"es-biomed-test-cl-{uuid.uuid4().hex[:6]}")
    be = ClusterBackend.connect(dataclasses.replace(cfg, request_timeout=10))
    figures: dict[str, object] = {"engine": engine, "nodes": n}
    killed = False
    try:
        analyzer = "english" if be.capabilities().english_analyzer else "standard"
        result = be.setup(cached.info, analyzer=analyzer, shards=3, replicas=1)
        assert result["warnings"] == [] and result["created"] == f"{be.alias}-v1"
        docs = list(iter_documents(SAMPLE))[:N_DOCS]
        report = be.index_documents(docs, cached)
        assert report.ok == N_DOCS and report.failed == []
        health = _health(be, wait_for_status="green")
        assert health["status"] == "green" and health["number_of_nodes"] == n and not health["timed_out"]
        assert health["active_primary_shards"] == 3 and health["active_shards"] == 6
        shards = be.client.cat.shards(index=be.alias, format="json")
        assert sorted(s["prirep"] for s in shards) == ["p"] * 3 + ["r"] * 3 and {s["state"] for s in shards} == {
            "STARTED"
        }
        assert len({s["node"] for s in shards}) == min(n, 6)  # spread over the nodes
        assert be.count() == N_DOCS
        before = _ranked(be, cached)
        assert all(before.values()) and {d.id for d in docs} >= {i for hits in before.values() for i, _ in hits}

        t0 = time.monotonic()
        _cluster_sh(engine, "kill", "2")
        killed = True
        figures["kill_s"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        # the same client (node 2 among its hosts), and a new one that tries the dead node first
        assert be.count() == N_DOCS
        figures["first_request_after_kill_s"] = round(time.monotonic() - t0, 2)
        assert _ranked(be, cached) == before
        dead_first = dataclasses.replace(cfg, url=",".join([urls[1], *urls[:1], *urls[2:]]))
        t1 = time.monotonic()
        again = ClusterBackend.connect(dead_first)
        assert again.count() == N_DOCS and _ranked(again, cached) == before
        figures["connect_and_search_dead_first_s"] = round(time.monotonic() - t1, 2)
        degraded = _health(be, wait_for_nodes=str(n - 1))
        assert degraded["number_of_nodes"] == n - 1 and degraded["status"] in ("yellow", "green")
        figures["health_with_node_2_dead"] = degraded["status"]

        t2 = time.monotonic()
        out = _cluster_sh(engine, "restart", "2")
        killed = False
        figures["restart_rejoin_s"] = float(re.search(r"rejoined in ([\d.]+) s", out.stderr).group(1))  # type: ignore[union-attr]
        assert out.stdout.strip().splitlines()[-1] == ",".join(urls)
        health = _health(be, wait_for_status="green")
        figures["restart_to_green_s"] = round(time.monotonic() - t2, 1)
        assert health["status"] == "green" and health["number_of_nodes"] == n and health["active_shards"] == 6
        assert be.count() == N_DOCS and _ranked(be, cached) == before
        figures["ids"] = sorted({i for hits in before.values() for i, _ in hits})
        print("cluster figures:", figures)
    finally:
        if killed:  # leave the cluster whole for whoever comes next
            _cluster_sh(engine, "restart", "2")
        be.drop()
