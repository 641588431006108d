"""Backends that execute a :class:`~es_biomed.query.SearchPlan`: the embedded engine (tantivy + vectors)."""

from es_biomed.backends.base import Hit, SearchResults
from es_biomed.backends.embedded import EmbeddedIndex, IndexConfig, IndexWriter

__all__ = ["EmbeddedIndex", "Hit", "IndexConfig", "IndexWriter", "SearchResults"]
