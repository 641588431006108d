"""The live tier: real engine nodes, one test run per engine that has what the test needs.

Each test that takes the ``engine`` fixture runs against OpenSearch and against Elasticsearch. The URL comes
from ``OPENSEARCH_URL`` / ``ES_URL``, else from the node that ``make opensearch`` / ``make elasticsearch``
started (``.engines/<engine>/url``). ``.ci/run`` starts both nodes and sets ``ES_BIOMED_LIVE_REQUIRED=1``, so
there a missing node fails the run instead of skipping.

A test names the cluster features it needs with ``@pytest.mark.needs("scripts", ...)`` (the properties of
:class:`es_biomed.backends.dialects.Capabilities`); on an engine whose node lacks one it is skipped with the
reason (for the Elasticsearch node built from Maven Central: the modules Elastic does not publish there).
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

ENGINES = {
    "opensearch": ("OPENSEARCH", "make opensearch"),
    "elasticsearch": ("ES", "make elasticsearch"),
}
#: Why a feature can be missing on our test nodes.
WHY_MISSING = {
    "scripts": "lang-painless (Painless script_score / cosineSimilarity)",
    "search_templates": "lang-mustache (stored search templates)",
    "reindex": "the reindex module (_reindex)",
    "ingest_pipelines": "ingest-common (set / remove / script processors)",
    "english_analyzer": "analysis-common (the english analyzer)",
    "rrf_retriever": "x-pack RRF with an Enterprise or trial license",
    "knn": "vector search (k-NN plugin)",
}
NOT_ON_CENTRAL = "Elastic publishes only the server jar and transport-netty4 on Maven Central"


def node_url(engine: str) -> str | None:
    """The engine's URL from the environment, else from a running node started by ``make``."""
    prefix, _ = ENGINES[engine]
    if os.environ.get(f"{prefix}_URL"):
        return os.environ[f"{prefix}_URL"]
    state = REPO / ".engines" / engine
    pid, url = state / "pid", state / "url"
    if pid.exists() and url.exists():
        try:
            os.kill(int(pid.read_text().strip()), 0)
        except (OSError, ValueError):
            return None
        return url.read_text().strip()
    return None


@pytest.fixture(scope="session", params=list(ENGINES))
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def cluster_config(engine: str):  # type: ignore[no-untyped-def]
    from es_biomed.backends.cluster import ClusterConfig

    prefix, start = ENGINES[engine]
    url = node_url(engine)
    if not url:
        msg = f"no {engine} node: {prefix}_URL is not set and none runs (`{start}` starts one)"
        if os.environ.get("ES_BIOMED_LIVE_REQUIRED"):
            pytest.fail(msg)
        pytest.skip(msg)
    return ClusterConfig(
        url=url,
        engine=engine,
        username=os.environ.get(f"{prefix}_USERNAME") or None,
        password=os.environ.get(f"{prefix}_PASSWORD") or None,
        api_key=os.environ.get(f"{prefix}_API_KEY") or None,
        ca_certs=os.environ.get(f"{prefix}_CA_CERTS") or None,
    )


@pytest.fixture(scope="session")
def caps(cluster_config):  # type: ignore[no-untyped-def]
    from es_biomed.backends.cluster import ClusterBackend

    return ClusterBackend.connect(cluster_config).capabilities()


@pytest.fixture(autouse=True)
def _needs(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("needs")
    if marker is None or "engine" not in request.fixturenames:
        return
    c = request.getfixturevalue("caps")
    missing = [f for f in marker.args if not getattr(c, f)]
    if missing:
        why = "; ".join(WHY_MISSING.get(f, f) for f in missing)
        extra = f" ({NOT_ON_CENTRAL})" if c.engine == "elasticsearch" and "x-pack-core" not in c.modules else ""
        pytest.skip(f"{c.engine} {c.version} node lacks {why}{extra}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(*features): cluster features the test needs (Capabilities names)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    live = Path(__file__).parent
    for item in items:
        if live in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session")
def text_analyzer(caps) -> str:  # type: ignore[no-untyped-def]
    """``english`` where analysis-common is loaded, else ``standard`` (built into the server)."""
    return "english" if caps.english_analyzer else "standard"


@pytest.fixture
def make_backend(cluster_config) -> Iterator[Callable[..., object]]:  # type: ignore[no-untyped-def]
    """A factory of backends on fresh aliases ``es-biomed-test-<random>``; each deletes exactly what it made."""
    from es_biomed.backends.cluster import ClusterBackend

    made = []

    def factory(**kwargs: object) -> ClusterBackend:
        cfg = dataclasses.replace(cluster_config, alias=f"es-biomed-test-{uuid.uuid4().hex[:8]}")
        be = ClusterBackend.connect(cfg, **kwargs)
        made.append(be)
        return be

    yield factory
    for be in made:
        be.drop()


@pytest.fixture(scope="session")
def cached(minilm):  # type: ignore[no-untyped-def]
    """The real MiniLM, memoized for the session: both engines and the embedded index get the very same vectors,
    and each text is embedded once."""
    from es_biomed.encode.memo import CachedEncoder

    return CachedEncoder(minilm)
