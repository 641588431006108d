"""The one front door for searching: :class:`Searcher` over the embedded engine, Elasticsearch or OpenSearch."""

from es_biomed.search.searcher import Searcher

__all__ = ["Searcher"]
