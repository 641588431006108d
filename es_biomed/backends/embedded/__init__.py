"""The embedded engine: tantivy BM25 plus a memory-mapped vector matrix, on one machine, no server.

* :mod:`~es_biomed.backends.embedded.index`: the read side (:class:`EmbeddedIndex`: open, check, search);
* :mod:`~es_biomed.backends.embedded.writer`: the single writer, per-batch atomic commits, recovery on open;
* :mod:`~es_biomed.backends.embedded.store`: the three stores and the commit protocol that keeps them one index;
* :mod:`~es_biomed.backends.embedded.maintenance`: check, repair and compaction.
"""

from es_biomed.backends.embedded.index import META_FILE, SCHEMA_VERSION, EmbeddedIndex, IndexConfig
from es_biomed.backends.embedded.writer import IndexWriter

__all__ = ["EmbeddedIndex", "IndexConfig", "IndexWriter", "META_FILE", "SCHEMA_VERSION"]
