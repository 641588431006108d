"""Ingest into the embedded engine (Celery workers call the same functions)."""

from es_biomed.ingest.local import IndexReport, index_corpus, index_documents

__all__ = ["IndexReport", "index_corpus", "index_documents"]
