"""A real non-Python client (issue 26): the official OpenSearch Node.js client against the real OpenSearch node.

``tests/clients/node/search_template.mjs`` (``@opensearch-project/opensearch``, pinned by its
``package-lock.json``, installed with ``npm ci``; npm's cache in ``$XDG_CACHE_HOME/es-biomed/npm`` so CI keeps
it) embeds five SciFact claims through ``POST /embed`` of a running ``es-biomed serve`` over the embedded sample
index, then calls the stored search template ``es-biomed-rescore`` with the client's ``searchTemplate``. Python
asks the same node the same claims through the one front door, :class:`~es_biomed.search.Searcher` (the
compiled ``SearchPlan`` that ``--print-request`` prints): the same ids, in the same order, with the same scores.

Without node or npm, or when npm cannot install the client, the test skips with the reason; under
``ES_BIOMED_LIVE_REQUIRED=1`` (``.ci/run``) it fails instead.
"""

# ruff: noqa: F811 (the fixtures imported from test_backend are function arguments here)
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from typing import Any

import pytest

from es_biomed.backends.cluster import split_urls
from es_biomed.backends.es_mappings import SEARCH_TEMPLATE_ID
from es_biomed.corpus import read_queries
from es_biomed.models.cache import cache_root
from es_biomed.search import Searcher
from tests.conftest import REPO
from tests.live.test_backend import SAMPLE, embedded, indexed  # noqa: F401 (fixtures)
from tests.serve_server import ServeProcess

NODE_DIR = REPO / "tests" / "clients" / "node"
SCRIPT = NODE_DIR / "search_template.mjs"
#: Five SciFact claims of the shipped sample (``queries.jsonl`` ids): plain text, a "(+)-", an apostrophe.
CLAIM_IDS = ("1049", "36", "42", "744", "1368")
K = 10

# The Node client is OpenSearch's: this test runs on the OpenSearch node only.
pytestmark = [
    pytest.mark.parametrize("engine", ["opensearch"], indirect=True),
    pytest.mark.needs("search_templates", "scripts"),
]


def unavailable(msg: str) -> None:
    """Skip with ``msg``, or fail with it where the live tier is required (``ES_BIOMED_LIVE_REQUIRED``)."""
    if os.environ.get("ES_BIOMED_LIVE_REQUIRED"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def node_client() -> str:
    """``npm ci`` of the pinned client; returns the ``node`` executable."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if path is None)
        unavailable(f"{missing} not found on PATH: the Node.js client test needs Node.js 18+ with npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0] or 0) < 18:
        unavailable(f"node {version} is too old: the Node.js client test needs Node.js 18+ (fetch)")
    cache = cache_root() / "npm"
    cmd = [npm, "ci", "--prefix", str(NODE_DIR), "--cache", str(cache), "--prefer-offline", "--no-audit", "--no-fund"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        unavailable(f"`{' '.join(cmd)}` did not finish in 300 s (is the npm registry reachable?)")
    if done.returncode:
        unavailable(f"npm could not install the OpenSearch Node.js client (`{' '.join(cmd)}`): {done.stderr[-2000:]}")
    return node


@pytest.fixture(scope="module")
def sample_server(embedded, tmp_path_factory):  # type: ignore[no-untyped-def]
    """``es-biomed serve`` over the embedded sample index: the encoder the OpenSearch index was built with."""
    proc = ServeProcess(embedded.path, tmp_path_factory.mktemp("serve-node") / "serve.log")
    try:
        yield proc.start()
    finally:
        proc.stop()


def run_node(node: str, job: dict[str, Any]) -> dict[str, Any]:
    """Run the Node.js script on ``job`` (stdin); its JSON answer."""
    done = subprocess.run([node, str(SCRIPT)], input=json.dumps(job), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the Node.js client failed: {done.stderr}"
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_node_client_search_template_equals_the_python_searcher(
    engine, node_client, cluster_config, indexed, sample_server
):
    claims = read_queries(SAMPLE / "queries.jsonl")
    claims = {qid: claims[qid] for qid in CLAIM_IDS}
    job = {
        "node": split_urls(cluster_config.url),
        "index": indexed.alias,
        "template": SEARCH_TEMPLATE_ID,
        "embed_url": sample_server.url,
        "username": cluster_config.username,
        "password": cluster_config.password,
        "ca_certs": cluster_config.ca_certs,
        "searches": [{"id": qid, "params": {"query": text, "k": K}} for qid, text in claims.items()],
    }
    t0 = time.perf_counter()
    out = run_node(node_client, job)
    node_s = time.perf_counter() - t0
    assert out["client"].startswith("@opensearch-project/opensearch 3.")
    # /embed answered with the encoder the OpenSearch index records (the node side searched its documents)
    assert out["encoder"]["fingerprint"] == indexed.encoder_meta()["fingerprint"]
    got = {r["id"]: r["hits"] for r in out["results"]}
    assert list(got) == list(claims)

    searcher = Searcher(indexed)  # the encoder the index records, its query variant: the CLI's and serve's
    rows = []
    for qid, text in claims.items():
        want = searcher.search(text, k=K, with_sources=False).hits
        ids = [h["id"] for h in got[qid]]
        assert len(want) == K and ids == [h.doc_id for h in want], (qid, text)
        scores = [h["score"] for h in got[qid]]
        assert scores == pytest.approx([h.score for h in want], rel=1e-6), (qid, text)
        diff = max(abs(s - h.score) / abs(h.score) for s, h in zip(scores, want, strict=True))
        rows.append(f"{qid:>5}  {' '.join(ids[:3]):<28}  {diff:.1e}  {text[:60]}")
    print(f"\n{out['client']}, {len(claims)} claims in {node_s:.2f} s (node start, /embed, searchTemplate)")
    print("claim  top-3 ids                     max rel score diff (Node vs Python)")
    print("\n".join(rows))
