"""The embedded engine: tantivy BM25 plus a memory-mapped vector matrix, on one machine, no server.

This module is the read side (:class:`EmbeddedIndex`: open, check, search); the single writer and its per-batch
atomic commits are :mod:`es_biomed.backends.embedded.writer`, the stores and the commit protocol
:mod:`es_biomed.backends.embedded.store`, and check / repair / compaction
:mod:`es_biomed.backends.embedded.maintenance`.

Vectors are aligned to documents through ``docs.sqlite`` (``row_start``, ``row_count``); rows left behind by an
update are dead and never scored (``es-biomed compact`` reclaims them). Upserts are idempotent: a document whose
content hash is unchanged is skipped, a changed one replaces the old version.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.backends.embedded.ann import EXACT_BELOW_ROWS, AnnView, VectorSearch, ann_candidates, open_ann
from es_biomed.backends.embedded.config import META_FILE, SCHEMA_VERSION, IndexConfig
from es_biomed.backends.embedded.store import (
    DOCS_FILE,
    LEGACY_VECTOR_FILE,
    DocSnapshot,
    advise_random,
    commit_seq,
    connect,
    pending_ops,
    read_snapshot,
    rebuild_hint,
    row_owners,
)
from es_biomed.backends.embedded.writer import IndexWriter, RecoveryReport, recover, write_lock
from es_biomed.corpus.passages import PassageConfig
from es_biomed.encode.base import EncoderInfo
from es_biomed.errors import (
    EncoderMismatchError,
    EsBiomedError,
    IndexCorruptError,
    IndexLockedError,
    IndexNotFoundError,
    PlanError,
)
from es_biomed.query.analysis import ANALYZER_NAME, AnalyzerConfig, build_analyzer
from es_biomed.query.plan import Filters, SearchPlan, apply_rescore, reciprocal_rank_fusion
from es_biomed.query.results import Hit, SearchResults

__all__ = ["EmbeddedIndex", "IndexConfig", "IndexWriter", "META_FILE", "SCHEMA_VERSION"]

logger = logging.getLogger(__name__)

_TEXT_FIELDS = ("title", "abstract", "body")
#: Extra hits fetched beyond ``n`` so that a tie at the cut can be ordered by writing order (grown when needed).
_TIE_MARGIN = 16


@dataclass(frozen=True)
class _View:
    """One committed state, swapped in whole by :meth:`EmbeddedIndex.reload` (searches never see half of two)."""

    docs: DocSnapshot
    ord: dict[str, int]
    vectors: np.ndarray
    dead_rows: np.ndarray
    searcher: Any
    #: per vector row: live or not, and the position of its document (-1 for a dead row)
    row_live: np.ndarray
    row_doc: np.ndarray
    ann: AnnView


class EmbeddedIndex:
    """Read side of an embedded index. Open with ``EmbeddedIndex(path)``; create with :meth:`create`.

    Example:
        >>> idx = EmbeddedIndex.create("/tmp/ix", encoder.info)          # doctest: +SKIP
        >>> with idx.writer() as w:                                        # doctest: +SKIP
        ...     w.add(docs, encoder)
        >>> idx.search(SearchPlan("brca1", k=3), encoder.encode_queries(["brca1"])[0])  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str], vector_search: VectorSearch = "auto") -> None:
        """Open the index at ``path``. ``vector_search``: ``auto`` (the ANN graph where the index keeps one and
        holds at least :data:`~es_biomed.backends.embedded.ann.EXACT_BELOW_ROWS` live rows, else exact), ``exact``
        or ``ann`` (the graph, or :class:`PlanError` saying why there is none)."""
        if vector_search not in ("auto", "exact", "ann"):
            raise PlanError(f"vector_search must be auto, exact or ann, got {vector_search!r}", param="vector_search")
        self.vector_search: VectorSearch = vector_search
        self.path = Path(path)
        meta = self.path / META_FILE
        if not meta.exists():
            raise IndexNotFoundError(
                f"no es-biomed index at {self.path} (missing {META_FILE}); create it with `es-biomed index`"
            )
        try:
            self.config = IndexConfig.from_dict(json.loads(meta.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, EsBiomedError):
                raise
            raise IndexCorruptError(
                str(meta), f"not a readable index configuration ({exc})", rebuild_hint(self.path)
            ) from None
        import tantivy

        self._tantivy = tantivy
        try:
            self._index = tantivy.Index.open(str(self.path / "tantivy"))
        except (ValueError, OSError) as exc:
            raise IndexCorruptError(
                str(self.path / "tantivy"), f"the BM25 store cannot be opened ({exc})", rebuild_hint(self.path)
            ) from None
        self._analyzer = build_analyzer(self.config.analyzer)
        self._index.register_tokenizer(ANALYZER_NAME, self._analyzer)
        self._schema = self._index.schema
        self._reload_lock = threading.Lock()
        self._checked = time.monotonic()
        #: What the last recovery by this reader reconciled (None: it found nothing to recover).
        self.recovery: RecoveryReport | None = None
        self.reload()

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        encoder: EncoderInfo | dict[str, Any],
        passages: PassageConfig | None = None,
        analyzer: AnalyzerConfig | None = None,
    ) -> EmbeddedIndex:
        """Create an empty index at ``path``, or open the existing one if it was built with the same encoder."""
        p = Path(path)
        enc = encoder.to_dict() if isinstance(encoder, EncoderInfo) else dict(encoder)
        if (p / META_FILE).exists():
            idx = cls(p)
            idx.check_encoder(enc)
            return idx
        import tantivy

        from es_biomed.backends.embedded.store import ensure_schema

        (p / "tantivy").mkdir(parents=True, exist_ok=True)
        sb = tantivy.SchemaBuilder()
        sb.add_text_field("id", stored=True, tokenizer_name="raw")
        for name in _TEXT_FIELDS:
            sb.add_text_field(name, stored=False, tokenizer_name=ANALYZER_NAME)
        sb.add_text_field("source", stored=False, tokenizer_name="raw")
        sb.add_integer_field("year", indexed=True, fast=True)
        tantivy.Index(sb.build(), path=str(p / "tantivy"))
        import sqlite3

        sqlite3.connect(p / DOCS_FILE).close()  # the empty file; the schema and WAL come next
        con = connect(p, write=True)
        try:
            ensure_schema(con, p, int(enc["dims"]))
        finally:
            con.close()
        (p / LEGACY_VECTOR_FILE).touch()
        cfg = IndexConfig(encoder=enc, passages=passages or PassageConfig(), analyzer=analyzer or AnalyzerConfig())
        cfg.write(p)  # written last: a directory without it is no index yet
        return cls(p)

    @staticmethod
    def exists(path: str | os.PathLike[str]) -> bool:
        return (Path(path) / META_FILE).exists()

    @staticmethod
    def read_config(path: str | os.PathLike[str]) -> IndexConfig | None:
        """The stored configuration of the index at ``path`` (None if there is none), without opening it."""
        meta = Path(path) / META_FILE
        return IndexConfig.from_dict(json.loads(meta.read_text())) if meta.exists() else None

    def reload(self) -> None:
        """Pick up the last commit: tantivy first, then the document table, so BM25 is never ahead of it.

        A commit that a crashed writer left half-applied is recovered first where no writer holds the index.

        Raises:
            IndexCorruptError: a store is missing or disagrees with the committed state (the file is named).
        """
        with self._reload_lock:
            for attempt in range(3):
                try:
                    self._view = self._read_view()
                    break
                except FileNotFoundError:  # a compaction replaced the vector file between snapshot and map
                    if attempt == 2:
                        raise
            self._checked = time.monotonic()

    def _read_view(self) -> _View:
        dims = self.config.dims
        con = connect(self.path)  # read-write, never created: SQLite rolls back an old-format hot journal here
        try:
            pending = pending_ops(con)
        finally:
            con.close()
        if pending:
            self._recover_abandoned()
        self._index.reload()
        searcher = self._index.searcher()
        docs = read_snapshot(self.path, dims)  # after tantivy: every id tantivy holds is in it (or deleted)
        if docs.vector_rows and docs.ids:
            vectors: np.ndarray = np.memmap(
                self.path / docs.vector_file, dtype=np.float32, mode="r", shape=(docs.vector_rows, dims)
            )
            advise_random(vectors)
        else:
            vectors = np.zeros((0, dims), dtype=np.float32)
        row_live, row_doc = row_owners(docs.row_start, docs.row_count, len(vectors))
        try:  # the ANN settings may have changed since this reader opened (es-biomed ann build / drop)
            self.config = IndexConfig.from_dict(json.loads((self.path / META_FILE).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if self.vector_search == "exact":  # asked for: a graph, present or not, is never read
            ann = AnnView(None, 0, 0, self.config.ann, None, "exact requested (--exact)", threading.Lock())
        else:
            ann = open_ann(
                self.path,
                self.config.ann,
                self.config.encoder.get("fingerprint"),
                dims,
                docs.vector_file,
                len(vectors),
            )
        return _View(
            docs=docs,
            ord={doc_id: i for i, doc_id in enumerate(docs.ids)},
            vectors=vectors,
            dead_rows=np.flatnonzero(~row_live),
            searcher=searcher,
            row_live=row_live,
            row_doc=row_doc,
            ann=ann,
        )

    def _recover_abandoned(self) -> bool:
        """Finish a commit a dead writer left half-done, if no live writer holds the index. True if it ran."""
        try:
            with write_lock(self.path):
                tw = self._index.writer(heap_size=50_000_000, num_threads=1)
                con = connect(self.path, write=True)
                try:
                    self.recovery = recover(self, con, tw)
                finally:
                    con.close()
                    del tw
        except (IndexLockedError, ValueError, OSError) as exc:  # a live writer will finish it; a read-only copy cannot
            logger.debug("index %s: recovery left to the writer (%s)", self.path, exc)
            return False
        return True

    def refresh(self, min_interval: float = 1.0) -> bool:
        """Reload if a commit happened since the last (re)load, checking at most every ``min_interval`` seconds
        (one small query). Returns True if it reloaded. What a long-running reader (``serve``) calls per request."""
        now = time.monotonic()
        if now - self._checked < min_interval:
            return False
        self._checked = now
        con = connect(self.path)
        try:
            seq = commit_seq(con)
        finally:
            con.close()
        if seq == self._view.docs.commit_seq and not self._view.docs.pending_ops:
            return False
        self.reload()
        return True

    def writer(self, heap_size: int = 128_000_000, **policy: Any) -> IndexWriter:
        """The single writer (raises :class:`IndexLockedError` if another holds the index).

        ``policy``: ``commit_every`` (documents), ``commit_interval`` (seconds), ``auto_compact`` (see
        :class:`~es_biomed.backends.embedded.writer.IndexWriter`)."""
        return IndexWriter(self, heap_size=heap_size, **policy)

    @property
    def tantivy_index(self) -> Any:
        """The tantivy index (BM25 store), for the writer and the maintenance tools of this package."""
        return self._index

    def view_of_commit(self) -> _View:
        """The committed state this reader searches (documents, vectors, dead rows, BM25 searcher)."""
        return self._view

    @property
    def commit_seq(self) -> int:
        """The sequence number of the commit this reader sees."""
        return self._view.docs.commit_seq

    def doc_ids(self) -> list[str]:
        """Every committed document id, in vector-row order."""
        return list(self._view.docs.ids)

    def bm25_doc_count(self) -> int:
        """Documents in the BM25 store as this reader sees it (equals :meth:`count` when the stores agree)."""
        return int(self._view.searcher.num_docs)

    # ------------------------------------------------------------------ identity
    @property
    def encoder_info(self) -> dict[str, Any]:
        return dict(self.config.encoder)

    def check_encoder(self, encoder: EncoderInfo | dict[str, Any]) -> None:
        """Refuse an encoder other than the one that built the index.

        Raises:
            EncoderMismatchError: names both encoders and how to proceed.
        """
        enc = encoder.to_dict() if isinstance(encoder, EncoderInfo) else dict(encoder)
        mine = self.config.encoder
        if enc.get("dims") != mine.get("dims") or enc.get("fingerprint") != mine.get("fingerprint"):
            raise EncoderMismatchError(
                f"index {self.path} was built with encoder {mine.get('name')!r} (dims={mine.get('dims')}, "
                f"fingerprint={mine.get('fingerprint')}); got {enc.get('name')!r} (dims={enc.get('dims')}, "
                f"fingerprint={enc.get('fingerprint')}). Search with --encoder {mine.get('name')!r}, or rebuild the index."
            )

    # ------------------------------------------------------------------ reads
    def count(self) -> int:
        return len(self._view.docs.ids)

    def __len__(self) -> int:
        return self.count()

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._view.ord

    def get(self, doc_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored fields of the given documents (missing ids are left out)."""
        ids = list(doc_ids)
        if not ids:
            return {}
        con = connect(self.path)
        try:
            out = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                q = f"SELECT doc_id, stored FROM docs WHERE doc_id IN ({','.join('?' * len(chunk))})"
                out.update({d: json.loads(s) for d, s in con.execute(q, chunk)})
            return out
        finally:
            con.close()

    def facets(self) -> dict[str, Any]:
        """What the filters can take: ``{"sources": {source: documents}, "years": [first, last] or None}``."""
        docs = self._view.docs
        names, counts = np.unique(docs.source[docs.source != ""].astype(str), return_counts=True)
        years = docs.year[docs.year >= 0]
        return {
            "sources": {str(n): int(c) for n, c in zip(names, counts, strict=True)},
            "years": [int(years.min()), int(years.max())] if len(years) else None,
        }

    def analyze(self, text: str) -> list[str]:
        """Tokens of ``text`` after the index analyzer."""
        return list(self._analyzer.analyze(text))

    def _filter_query(self, filters: Filters) -> list[Any]:
        T = self._tantivy
        clauses = []
        if filters.sources:
            src = T.Query.boolean_query(
                [(T.Occur.Should, T.Query.term_query(self._schema, "source", s)) for s in filters.sources]
            )
            clauses.append((T.Occur.Must, T.Query.const_score_query(src, 0.0)))
        if filters.year_from is not None or filters.year_to is not None:
            rng = T.Query.range_query(self._schema, "year", T.FieldType.Integer, filters.year_from, filters.year_to)
            clauses.append((T.Occur.Must, T.Query.const_score_query(rng, 0.0)))
        return clauses

    def bm25(self, plan: SearchPlan, n: int | None = None) -> list[Hit]:
        """BM25 (k1=1.2, b=0.75) over ``plan.fields`` with boosts and filters; best first.

        tantivy's formula keeps the ``(k1 + 1)`` factor that Lucene 8 dropped, exactly as Elasticsearch's and
        OpenSearch's default ``LegacyBM25Similarity`` does, so scores equal the engines' (measured: within 1e-6
        relative on real nodes, ``tests/live/test_parity.py``)."""
        return self._bm25(self._view, plan, n)

    def _bm25(self, v: _View, plan: SearchPlan, n: int | None = None) -> list[Hit]:
        T = self._tantivy
        tokens = self.analyze(plan.query)
        if not tokens or not v.docs.ids:
            return []
        if plan.match_type == "most_fields" or len(plan.fields) == 1:
            # a sum over fields of sums over terms is one sum over (field, term) pairs: one flat disjunction of
            # term queries, which tantivy answers with block-max WAND (skipping blocks that cannot reach the top
            # k) where nested boolean queries score every posting
            text_q = T.Query.boolean_query(
                [(T.Occur.Should, self._term(name, t, boost)) for name, boost in plan.fields for t in tokens]
            )
        else:
            per_field = [
                T.Query.boolean_query([(T.Occur.Should, self._term(name, t, boost)) for t in tokens])
                for name, boost in plan.fields
            ]
            text_q = T.Query.disjunction_max_query(per_field, tie_breaker=0.0)
        filters = self._filter_query(plan.filters)
        query = T.Query.boolean_query([(T.Occur.Must, text_q), *filters]) if filters else text_q
        return self._top_by_score(v, query, n or plan.k)

    def _term(self, name: str, token: str, boost: float) -> Any:
        q = self._tantivy.Query.term_query(self._schema, name, token)
        return self._tantivy.Query.boost_query(q, boost) if boost != 1.0 else q

    @staticmethod
    def _top_by_score(v: _View, query: Any, n: int) -> list[Hit]:
        """The ``n`` best hits of ``query``, equal scores in the order the documents were written.

        tantivy breaks ties by segment and position, which depend on when commits happened; the order of writing
        (a document's first vector row) does not, so rankings are the same whatever the commit policy (and equal
        a single segment's, as Elasticsearch's one-shard order is). The fetch grows until the tie at the cut is
        whole, so no document is left out of it by the engine's own tie order.
        """
        fetch = n + _TIE_MARGIN
        while True:
            got = v.searcher.search(query, fetch).hits
            kept: list[tuple[float, int, str]] = []
            for score, addr in got:
                doc_id = v.searcher.doc(addr)["id"][0]
                i = v.ord.get(doc_id)
                if i is not None:  # deleted by a commit whose BM25 step is still running: not in this view
                    kept.append((float(score), int(v.docs.row_start[i]), doc_id))
            exhausted = len(got) < fetch
            if exhausted or (len(kept) > n and kept[-1][0] < kept[n - 1][0]):
                break
            fetch *= 2
        kept.sort(key=lambda t: (-t[0], t[1]))
        return [Hit(doc_id, score) for score, _, doc_id in kept[:n]]

    def vector_scores(self, query_vector: np.ndarray, doc_ids: Iterable[str]) -> dict[str, float]:
        """Cosine of ``query_vector`` with each document's best passage; docs without vectors are left out."""
        return self._vector_scores(self._view, query_vector, doc_ids)

    @staticmethod
    def _vector_scores(v: _View, query_vector: np.ndarray, doc_ids: Iterable[str]) -> dict[str, float]:
        q = np.asarray(query_vector, dtype=np.float32)
        pos = [v.ord.get(d) for d in doc_ids]
        docs, cos = EmbeddedIndex._best_passage_cos(v, q, np.array([i for i in pos if i is not None], dtype=np.int64))
        return {v.docs.ids[i]: float(c) for i, c in zip(docs.tolist(), cos.tolist(), strict=True)}

    @staticmethod
    def _best_passage_cos(v: _View, q: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each document's best passage cosine with ``q``, gathering their rows in one read (documents without
        vectors are left out)."""
        counts = v.docs.row_count[docs]
        docs, counts = docs[counts > 0], counts[counts > 0]
        if not len(docs):
            return docs, np.zeros(0, dtype=np.float32)
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
        rows = np.repeat(v.docs.row_start[docs], counts) + (np.arange(int(counts.sum())) - np.repeat(offsets, counts))
        return docs, np.maximum.reduceat(v.vectors[rows] @ q, offsets)

    @staticmethod
    def _filter_mask(v: _View, filters: Filters) -> np.ndarray | None:
        if not filters:
            return None
        docs = v.docs
        mask = np.ones(len(docs.ids), dtype=bool)
        if filters.sources:
            mask &= np.isin(docs.source, list(filters.sources))
        if filters.year_from is not None:
            mask &= docs.year >= filters.year_from
        if filters.year_to is not None:
            mask &= (docs.year <= filters.year_to) & (docs.year >= 0)
        return mask

    def knn(self, query_vector: np.ndarray, n: int, filters: Filters | None = None) -> list[Hit]:
        """kNN over all passages (a doc scores by its best passage), scored ``(1 + cos) / 2`` as ES does: exact, or
        the ANN graph's candidates scored exactly (:meth:`vector_search_info` says which)."""
        return self._knn(self._view, query_vector, n, filters)

    def _method(self, v: _View, strict: bool = True) -> str:
        """``ann`` or ``exact`` for this view; ``strict``: a requested graph that is not usable raises."""
        if self.vector_search == "exact":
            return "exact"
        if self.vector_search == "ann":
            if not v.ann.usable and strict:
                raise PlanError(f"index {self.path}: no usable ANN index: {v.ann.reason}", param="vector_search")
            return "ann" if v.ann.usable else "exact"
        return "ann" if v.ann.usable and v.docs.live_rows >= EXACT_BELOW_ROWS else "exact"

    def vector_search_info(self) -> dict[str, Any]:
        """How dense scoring runs now: ``method`` (``ann`` or ``exact``), why, and the graph's state."""
        v = self._view
        method = self._method(v, strict=False)
        info = v.ann.describe(method, v.docs.live_rows)
        if method == "exact":
            if self.vector_search == "exact":
                info["reason"] = "exact requested (--exact)"
            elif v.ann.usable:
                info["reason"] = f"exact below {EXACT_BELOW_ROWS} live vector rows (the graph is kept for growth)"
        info["requested"] = self.vector_search
        return info

    def _knn(self, v: _View, query_vector: np.ndarray, n: int, filters: Filters | None = None) -> list[Hit]:
        if not v.docs.ids or not len(v.vectors):
            return []
        q = np.asarray(query_vector, dtype=np.float32)
        if self._method(v) == "ann":
            mask = self._filter_mask(v, filters or Filters())
            docs = ann_candidates(v.ann, v.vectors, v.row_live, v.row_doc, q, n, mask)
            if docs is not None:
                return self._score_docs(v, q, docs, n)
        sims = v.vectors @ q
        if len(v.dead_rows):
            sims[v.dead_rows] = -np.inf
        doc_cos = np.maximum.reduceat(sims, v.docs.row_start)
        mask = self._filter_mask(v, filters or Filters())
        if mask is not None:
            doc_cos = np.where(mask, doc_cos, -np.inf)
        n = min(n, len(doc_cos))
        top = np.argpartition(-doc_cos, n - 1)[:n]
        top = top[np.lexsort((top, -doc_cos[top]))]
        return [Hit(v.docs.ids[i], float((1.0 + doc_cos[i]) / 2.0)) for i in top if np.isfinite(doc_cos[i])]

    @staticmethod
    def _score_docs(v: _View, q: np.ndarray, docs: np.ndarray, n: int) -> list[Hit]:
        """The best ``n`` of ``docs`` by their exact best-passage cosine (ties in document order, as the scan)."""
        docs, doc_cos = EmbeddedIndex._best_passage_cos(v, q, docs)
        order = np.lexsort((docs, -doc_cos))[:n]
        return [Hit(v.docs.ids[docs[i]], float((1.0 + doc_cos[i]) / 2.0)) for i in order]

    def search(
        self,
        plan: SearchPlan,
        query_vector: np.ndarray | None = None,
        with_sources: bool = False,
        encoder_fingerprint: str | None = None,
    ) -> SearchResults:
        """Execute ``plan``; ``query_vector`` is required for rerank, dense and hybrid modes. ``encoder_fingerprint``
        (of the encoder that made the vector), when given, must be the index's (else
        :class:`~es_biomed.errors.EncoderMismatchError`)."""
        t0 = time.perf_counter()
        if plan.mode == "rerank_ce":  # the index holds no cross-encoder
            raise PlanError(
                "mode 'rerank_ce' needs a cross-encoder: search through Searcher (es_biomed.Searcher runs the "
                "cross-encoder stage, es_biomed.search.stages.cross_encoder_stage)"
            )
        if plan.mode != "bm25" and query_vector is None:
            raise PlanError(f"mode {plan.mode!r} needs a query vector")
        if encoder_fingerprint is not None and query_vector is not None:
            if encoder_fingerprint != self.config.encoder.get("fingerprint"):
                raise EncoderMismatchError(
                    f"index {self.path} was built with encoder {self.config.encoder.get('name')!r} (fingerprint "
                    f"{self.config.encoder.get('fingerprint')}); the query vector comes from fingerprint "
                    f"{encoder_fingerprint}"
                )
        if query_vector is not None and len(query_vector) != self.config.dims:
            raise EncoderMismatchError(f"query vector has {len(query_vector)} dims, index expects {self.config.dims}")
        v = self._view  # one committed state for the whole search
        parts: dict[str, dict[str, float]] = {}
        if plan.mode == "bm25":
            hits = self._bm25(v, plan, plan.k)
            parts = {h.doc_id: {"bm25": h.score} for h in hits}
        elif plan.mode == "rerank":
            first = self._bm25(v, plan, plan.first_pass_size)
            cos = self._vector_scores(v, query_vector, [h.doc_id for h in first[: plan.window_size]])  # type: ignore[arg-type]
            rescored = apply_rescore(first, {d: c + 1.0 for d, c in cos.items()}, plan)
            hits = [Hit(d, s) for d, s in rescored[: plan.k]]
            parts = {h.doc_id: {"bm25": h.score} for h in first}
            for d, c in cos.items():
                parts[d]["cosine"] = c
        elif plan.mode == "dense":
            hits = self._knn(v, query_vector, plan.k, plan.filters)  # type: ignore[arg-type]
            parts = {h.doc_id: {"cosine": 2.0 * h.score - 1.0} for h in hits}
        else:
            lexical = self._bm25(v, plan, plan.window_size)
            dense = self._knn(v, query_vector, plan.window_size, plan.filters)  # type: ignore[arg-type]
            # ES's rrf retriever returns at most rank_window_size hits
            fused = reciprocal_rank_fusion(
                [[h.doc_id for h in lexical], [h.doc_id for h in dense]], plan.rank_constant, plan.window_size
            )
            parts = {d: {"rrf": s} for d, s in fused}
            for h in lexical:
                parts.setdefault(h.doc_id, {})["bm25"] = h.score
            for h in dense:
                parts.setdefault(h.doc_id, {})["cosine"] = 2.0 * h.score - 1.0
            if plan.mode == "hybrid_rerank":
                cos = self._vector_scores(v, query_vector, [d for d, _ in fused[: plan.window_size]])  # type: ignore[arg-type]
                fused = apply_rescore(fused, {d: c + 1.0 for d, c in cos.items()}, plan)
                for d, c in cos.items():
                    parts[d]["cosine"] = c
            hits = [Hit(d, s) for d, s in fused[: plan.k]]
        parts = {h.doc_id: parts.get(h.doc_id, {}) for h in hits}
        sources = self.get(h.doc_id for h in hits) if with_sources else {}
        return SearchResults(hits=hits, sources=sources, took_ms=(time.perf_counter() - t0) * 1000, parts=parts)
