"""The cluster backend: the embedded engine's interface over Elasticsearch or OpenSearch, reranking in the cluster.

* :mod:`~es_biomed.backends.cluster.config`: connection settings and their redaction;
* :mod:`~es_biomed.backends.cluster.connection`: the client, capabilities, the recorded encoder identity;
* :mod:`~es_biomed.backends.cluster.admin`: versioned indices, templates, reindex and alias swap;
* :mod:`~es_biomed.backends.cluster.bulk`: what writes send and report;
* :mod:`~es_biomed.backends.cluster.backend`: :class:`ClusterBackend` (writes and searches) and
  :func:`connect_cluster`.
"""

from es_biomed.backends.cluster.backend import ClusterBackend, connect_cluster
from es_biomed.backends.cluster.bulk import (
    BulkInterruptedError,
    BulkReport,
    bulk_actions,
    document_source,
    reindex_body,
)
from es_biomed.backends.cluster.config import (
    CLUSTER_ENGINES,
    ClusterConfig,
    check_url,
    check_urls,
    redact,
    split_urls,
    url_password,
)

__all__ = [
    "CLUSTER_ENGINES",
    "BulkInterruptedError",
    "BulkReport",
    "ClusterBackend",
    "ClusterConfig",
    "bulk_actions",
    "check_url",
    "check_urls",
    "connect_cluster",
    "document_source",
    "redact",
    "reindex_body",
    "split_urls",
    "url_password",
]
