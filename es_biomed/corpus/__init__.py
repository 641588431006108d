"""Corpus readers and the interchange types (documents, runs, qrels)."""

from es_biomed.corpus.bioasq import DEFAULT_JACCARD, jaccard, load_bioasq
from es_biomed.corpus.formats import detect_format
from es_biomed.corpus.passages import PassageConfig, split_passages
from es_biomed.corpus.readers import iter_documents, load_beir, read_qrels, read_queries
from es_biomed.corpus.records import RejectSink
from es_biomed.corpus.types import Document, Qrels, RetrievalSet, Run, SourceRef

__all__ = [
    "DEFAULT_JACCARD",
    "Document",
    "PassageConfig",
    "Qrels",
    "RejectSink",
    "RetrievalSet",
    "Run",
    "SourceRef",
    "detect_format",
    "iter_documents",
    "jaccard",
    "load_beir",
    "load_bioasq",
    "read_qrels",
    "read_queries",
    "split_passages",
]
