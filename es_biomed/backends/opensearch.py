"""OpenSearch: the cluster backend with the OpenSearch dialect (``opensearch-py`` client; the k-NN plugin's
``knn_vector`` with the Lucene engine, and its Painless ``cosineSimilarity`` for the rescore).

Connection from ``OPENSEARCH_URL`` (+ ``OPENSEARCH_USERNAME`` / ``OPENSEARCH_PASSWORD``, ``OPENSEARCH_CA_CERTS``).
Everything lives in :mod:`es_biomed.backends.cluster`.
"""

from __future__ import annotations

from typing import Any

from es_biomed.backends.cluster import ClusterBackend

__all__ = ["OpenSearchBackend"]


class OpenSearchBackend(ClusterBackend):
    """:class:`~es_biomed.backends.cluster.ClusterBackend` with the OpenSearch dialect."""

    def __init__(self, client: Any, alias: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("dialect", "opensearch")
        super().__init__(client, **({"alias": alias} if alias else {}), **kwargs)
