"""Backends that execute a :class:`~es_biomed.query.SearchPlan`: the embedded engine (tantivy + vectors) and
one cluster backend for Elasticsearch and OpenSearch (its client libraries load only when used)."""

from es_biomed.backends.cluster import BulkInterruptedError, BulkReport, ClusterBackend, ClusterConfig
from es_biomed.backends.dialects import Capabilities, get_dialect
from es_biomed.backends.embedded import EmbeddedIndex, IndexConfig, IndexWriter
from es_biomed.query.results import Hit, SearchResults

__all__ = [
    "BulkInterruptedError",
    "BulkReport",
    "Capabilities",
    "ClusterBackend",
    "ClusterConfig",
    "EmbeddedIndex",
    "Hit",
    "IndexConfig",
    "IndexWriter",
    "SearchResults",
    "get_dialect",
]
