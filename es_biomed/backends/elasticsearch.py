"""Elasticsearch: the cluster backend with the Elasticsearch dialect (``elasticsearch`` client 9.x for
Elasticsearch 9, 8.18+ for Elasticsearch 8: the client refuses a server of another major, and any server that
does not send ``X-Elastic-Product``).

Everything lives in :mod:`es_biomed.backends.cluster`; this module keeps the Elasticsearch-flavoured names.
"""

from __future__ import annotations

from typing import Any

from es_biomed.backends.cluster import (
    BulkInterruptedError,
    BulkReport,
    ClusterBackend,
    ClusterConfig,
    bulk_actions,
    document_source,
    redact,
)
from es_biomed.backends.dialects import ElasticsearchDialect

__all__ = [
    "ESConfig",
    "BulkReport",
    "BulkInterruptedError",
    "ElasticsearchBackend",
    "make_client",
    "document_source",
    "bulk_actions",
    "redact",
]


class ESConfig(ClusterConfig):
    """:class:`~es_biomed.backends.cluster.ClusterConfig` read from ``ES_URL``, ``ES_API_KEY``, ``ES_USERNAME`` /
    ``ES_PASSWORD``, ``ES_CA_CERTS``, ``ES_ALIAS`` (``from_env``'s default engine is Elasticsearch)."""


def make_client(cfg: ClusterConfig) -> Any:
    """An ``elasticsearch.Elasticsearch`` client for ``cfg`` (retries on timeouts and 429/502/503/504)."""
    return ElasticsearchDialect().make_client(cfg)


class ElasticsearchBackend(ClusterBackend):
    """:class:`~es_biomed.backends.cluster.ClusterBackend` with the Elasticsearch dialect."""

    def __init__(self, client: Any, alias: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("dialect", "elasticsearch")
        super().__init__(client, **({"alias": alias} if alias else {}), **kwargs)
