"""es-biomed: biomedical literature search with BM25 retrieval and in-engine cosine rerank.

The top-level import is light: it pulls neither torch nor TensorFlow (encoders load them on demand).
"""

from es_biomed.backends import EmbeddedIndex, Hit, SearchResults
from es_biomed.corpus import Document, RetrievalSet, iter_documents, load_beir, load_bioasq
from es_biomed.encode import Encoder, load_encoder
from es_biomed.errors import (
    EncoderMismatchError,
    EsBiomedError,
    IndexLockedError,
    MissingDependencyError,
    PlanError,
    RecordError,
)
from es_biomed.eval import evaluate
from es_biomed.ingest import index_corpus, index_documents
from es_biomed.query import Filters, SearchPlan
from es_biomed.search import Searcher
from es_biomed.version import __version__

__all__ = [
    "__version__",
    "Document",
    "EmbeddedIndex",
    "Encoder",
    "EncoderMismatchError",
    "EsBiomedError",
    "Filters",
    "Hit",
    "IndexLockedError",
    "MissingDependencyError",
    "PlanError",
    "RecordError",
    "RetrievalSet",
    "SearchPlan",
    "SearchResults",
    "Searcher",
    "evaluate",
    "index_corpus",
    "index_documents",
    "iter_documents",
    "load_beir",
    "load_bioasq",
    "load_encoder",
]
