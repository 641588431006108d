"""Engine dialects for the cluster backend: what differs between Elasticsearch and OpenSearch.

One :class:`~es_biomed.backends.cluster.ClusterBackend` runs every operation; a :class:`Dialect` supplies only
what the engines do differently (SQLAlchemy's dialect pattern):

* the client library (``elasticsearch`` refuses non-Elastic servers by design, so OpenSearch uses ``opensearch-py``)
  and its exception classes;
* the index template (``mappings/templates/`` or ``mappings/opensearch/``): ``dense_vector`` vs ``knn_vector``;
* the stored search template's mustache source, and the compiler's dialect (cosine script, kNN clause);
* how the server identifies itself, and the commands that start a local node or cluster.

Several node URLs: the client gets every URL of :attr:`ClusterConfig.urls` as its hosts. On a connection error
or a timeout it marks that node dead and sends the request to the next one (``max_retries`` at least the number of
URLs, ``retry_on_timeout``), so one dead node costs a refused connection, not a failed request. No sniffing: the
URLs given are the ones that reach the cluster, while the addresses a cluster publishes (``_nodes/http``) are often
unreachable behind Docker, NAT, a proxy or a cloud load balancer, and sniffing would add nodes nobody listed.

What a given *cluster* can do (modules installed, license) is detected at run time: :class:`Capabilities`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from es_biomed.errors import ClusterError, require

__all__ = [
    "DEFAULT_INDEX_OPTIONS",
    "Engine",
    "ENGINES",
    "Capabilities",
    "Dialect",
    "ElasticsearchDialect",
    "OpenSearchDialect",
    "get_dialect",
]

#: HNSW over int8-quantized vectors: 4x smaller than float, recall close to float for 384-dim MiniLM.
DEFAULT_INDEX_OPTIONS: dict[str, Any] = {"type": "int8_hnsw", "m": 16, "ef_construction": 100}

logger = logging.getLogger(__name__)

Engine = Literal["elasticsearch", "opensearch"]
ENGINES: tuple[Engine, ...] = ("elasticsearch", "opensearch")


@dataclass(frozen=True)
class Capabilities:
    """What one cluster supports, from ``GET _nodes/plugins`` (and ``GET _license`` on Elasticsearch).

    Attributes:
        engine: ``elasticsearch`` or ``opensearch``.
        version: The server version string.
        modules: Names of the modules and plugins loaded on every node.
        license: Elasticsearch license type (``basic``, ``trial``, ``enterprise``...), ``None`` without x-pack.
    """

    engine: Engine
    version: str
    modules: frozenset[str] = field(default_factory=frozenset)
    license: str | None = None

    @property
    def scripts(self) -> bool:
        """Painless is loaded: ``script_score`` with ``cosineSimilarity`` (the cosine rescore) can run."""
        return "lang-painless" in self.modules

    @property
    def rrf_retriever(self) -> bool:
        """Elasticsearch's ``rrf`` retriever is usable (x-pack RRF module and an Enterprise or trial license)."""
        return (
            self.engine == "elasticsearch"
            and "x-pack-rank-rrf" in self.modules
            and (self.license or "") in ("enterprise", "trial")
        )

    @property
    def search_templates(self) -> bool:
        return "lang-mustache" in self.modules

    @property
    def reindex(self) -> bool:
        return "reindex" in self.modules

    @property
    def ingest_pipelines(self) -> bool:
        return "ingest-common" in self.modules

    @property
    def english_analyzer(self) -> bool:
        return "analysis-common" in self.modules

    @property
    def knn(self) -> bool:
        """Vector search: built into Elasticsearch, the k-NN plugin on OpenSearch."""
        return self.engine == "elasticsearch" or "opensearch-knn" in self.modules

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "version": self.version,
            "license": self.license,
            "modules": sorted(self.modules),
            "scripts": self.scripts,
            "rrf_retriever": self.rrf_retriever,
            "search_templates": self.search_templates,
            "reindex": self.reindex,
            "ingest_pipelines": self.ingest_pipelines,
            "english_analyzer": self.english_analyzer,
            "knn": self.knn,
        }


class Dialect:
    """Base class: the Elasticsearch-or-OpenSearch specifics the cluster backend needs."""

    name: Engine
    #: The engine's name as people write it.
    display: str
    #: Environment variable prefix: ``ES_URL`` / ``OPENSEARCH_URL``...
    env_prefix: str
    #: The Python client module and the es-biomed extra that installs it.
    client_module: str
    extra: str
    #: The folder of ``mappings/`` with the index template, and the compiler dialect.
    mappings_folder: str
    #: The mapping key that holds a vector field's dimensionality.
    dims_key: str
    #: What starts a local single-node cluster from this repository.
    start_command: str
    #: What starts a local multi-node cluster from this repository: the script, and its make target.
    cluster_start_command: str
    cluster_make_target: str

    def module(self) -> Any:
        return require(self.client_module, self.extra)

    def helpers(self) -> Any:
        return require(f"{self.client_module}.helpers", self.extra)

    def make_client(self, cfg: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @staticmethod
    def retry_kwargs(cfg: Any) -> dict[str, Any]:
        """Retries that fail over: at least one try per listed node (3 at the least), timeouts included."""
        return {"max_retries": max(3, len(cfg.urls)), "retry_on_timeout": True}

    def check_server(self, info: dict[str, Any], url: str) -> str:
        """Refuse a server of the other engine or of an unsupported version; return the version string."""
        raise NotImplementedError  # pragma: no cover - overridden

    def bulk_kwargs(self) -> dict[str, Any]:
        """Extra ``helpers.streaming_bulk`` arguments."""
        return {}

    def vector_mapping(self, dims: int, index_options: dict[str, Any] | None) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - overridden

    def license(self, client: Any) -> str | None:
        return None

    # exception classes of the client library
    def not_found(self) -> type[BaseException]:
        return self.module().NotFoundError  # type: ignore[no-any-return]

    def connection_errors(self) -> tuple[type[BaseException], ...]:
        m = self.module()
        return (m.ConnectionError, m.ConnectionTimeout)

    def auth_errors(self) -> tuple[type[BaseException], ...]:
        m = self.module()
        return (m.AuthenticationException, m.AuthorizationException)

    def api_error(self) -> type[BaseException]:
        raise NotImplementedError  # pragma: no cover - overridden

    @staticmethod
    def status_of(exc: BaseException) -> int | None:
        """The HTTP status of a client exception (the two clients name it differently)."""
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            return status
        meta = getattr(exc, "meta", None)
        return getattr(meta, "status", None)


class ElasticsearchDialect(Dialect):
    name: Engine = "elasticsearch"
    display = "Elasticsearch"
    env_prefix = "ES"
    client_module = "elasticsearch"
    extra = "es"
    mappings_folder = "templates"
    dims_key = "dims"
    start_command = "make elasticsearch"
    cluster_start_command = "tests/engines/elasticsearch/cluster.sh start"
    cluster_make_target = "make elasticsearch-cluster"

    def make_client(self, cfg: Any) -> Any:
        es = self.module()
        kwargs: dict[str, Any] = {"request_timeout": cfg.request_timeout, **self.retry_kwargs(cfg)}
        if cfg.api_key:
            kwargs["api_key"] = cfg.api_key
        elif cfg.username:
            kwargs["basic_auth"] = (cfg.username, cfg.password or "")
        if cfg.ca_certs:
            kwargs["ca_certs"] = cfg.ca_certs
        return es.Elasticsearch(list(cfg.urls), **kwargs)

    def check_server(self, info: dict[str, Any], url: str) -> str:
        version = info.get("version", {})
        number = str(version.get("number", "?"))
        if version.get("distribution") == "opensearch":
            raise ClusterError(f"{url} is OpenSearch {number}, not Elasticsearch: use --backend opensearch")
        major = int(number.split(".")[0]) if number[:1].isdigit() else 0
        client_major = int(self.module().__versionstr__.split(".")[0])
        if major != client_major:
            raise ClusterError(
                f"{url} runs Elasticsearch {number} but the installed client is elasticsearch-py "
                f"{self.module().__versionstr__}; install elasticsearch>={major},<{major + 1} "
                f"(for Elasticsearch 8: elasticsearch>=8.18,<9)"
            )
        return number

    def bulk_kwargs(self) -> dict[str, Any]:
        return {"retry_on_status": (429,)}

    def vector_mapping(self, dims: int, index_options: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "type": "dense_vector",
            "dims": dims,
            "similarity": "cosine",
            "index": True,
            "index_options": dict(index_options or DEFAULT_INDEX_OPTIONS),
        }

    def license(self, client: Any) -> str | None:
        try:
            return str(client.license.get()["license"]["type"])
        except Exception:  # no x-pack (a node from the server jar alone answers 400 or 404)
            return None

    def api_error(self) -> type[BaseException]:
        return self.module().ApiError  # type: ignore[no-any-return]


class OpenSearchDialect(Dialect):
    name: Engine = "opensearch"
    display = "OpenSearch"
    env_prefix = "OPENSEARCH"
    client_module = "opensearchpy"
    extra = "opensearch"
    mappings_folder = "opensearch"
    dims_key = "dimension"
    start_command = "make opensearch"
    cluster_start_command = "tests/engines/opensearch/cluster.sh start"
    cluster_make_target = "make opensearch-cluster"

    def make_client(self, cfg: Any) -> Any:
        osp = self.module()
        kwargs: dict[str, Any] = {
            "timeout": cfg.request_timeout,
            **self.retry_kwargs(cfg),
            "retry_on_status": (502, 503, 504),
            # urllib3 keeps one connection per node unless told: threads sharing the client (serve, a query load)
            # would open and drop one per request. 10 is what the Elasticsearch client keeps per node.
            "pool_maxsize": 10,
        }
        if cfg.username:
            kwargs["http_auth"] = (cfg.username, cfg.password or "")
        if any(u.startswith("https") for u in cfg.urls):
            kwargs["use_ssl"] = True
            kwargs["verify_certs"] = True
            if cfg.ca_certs:
                kwargs["ca_certs"] = cfg.ca_certs
        if cfg.api_key:
            kwargs["headers"] = {"Authorization": f"ApiKey {cfg.api_key}"}
        return osp.OpenSearch(hosts=list(cfg.urls), **kwargs)

    def check_server(self, info: dict[str, Any], url: str) -> str:
        version = info.get("version", {})
        number = str(version.get("number", "?"))
        if version.get("distribution") != "opensearch":
            raise ClusterError(
                f"{url} is Elasticsearch {number}, not OpenSearch: use --backend es (and ES_URL)"
                if "tagline" in info
                else f"{url} does not look like OpenSearch (no version.distribution): {str(info)[:200]}"
            )
        major = int(number.split(".")[0]) if number[:1].isdigit() else 0
        if major < 2:
            raise ClusterError(f"{url} runs OpenSearch {number}; es-biomed needs OpenSearch 2.x or 3.x")
        return number

    def vector_mapping(self, dims: int, index_options: dict[str, Any] | None) -> dict[str, Any]:
        opts = dict(index_options or {})
        params = {"m": int(opts.get("m", 16)), "ef_construction": int(opts.get("ef_construction", 100))}
        return {
            "type": "knn_vector",
            "dimension": dims,
            "method": {"name": "hnsw", "space_type": "cosinesimil", "engine": "lucene", "parameters": params},
        }

    def api_error(self) -> type[BaseException]:
        return self.module().TransportError  # type: ignore[no-any-return]


_DIALECTS: dict[str, type[Dialect]] = {"elasticsearch": ElasticsearchDialect, "opensearch": OpenSearchDialect}


def get_dialect(engine: str) -> Dialect:
    """``elasticsearch`` (or ``es``) or ``opensearch``."""
    key = "elasticsearch" if engine == "es" else engine
    if key not in _DIALECTS:
        raise ClusterError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    return _DIALECTS[key]()
