"""The single writer of an embedded index: per-batch atomic commits and recovery on open.

The protocol is written down in :mod:`es_biomed.backends.embedded.store`; this module carries it out.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from es_biomed.backends.embedded.ann import EXACT_BELOW_ROWS, AnnSettings, AnnWriter
from es_biomed.backends.embedded.config import IndexConfig
from es_biomed.backends.embedded.store import (
    DocSnapshot,
    compact_vectors,
    connect,
    doc_fields,
    ensure_schema,
    fields_json,
    read_snapshot,
    row_owners,
)
from es_biomed.corpus.passages import embed_passages
from es_biomed.corpus.types import Document
from es_biomed.encode.base import Encoder
from es_biomed.errors import EncoderMismatchError, IndexLockedError


class WritableIndex(Protocol):
    """What the writer needs of the index it writes (:class:`~es_biomed.backends.embedded.WritableIndex`)."""

    path: Path
    config: IndexConfig

    @property
    def tantivy_index(self) -> Any: ...

    def check_encoder(self, encoder: Any) -> None: ...

    def reload(self) -> None: ...


__all__ = ["IndexWriter", "RecoveryReport", "WritableIndex", "recover", "write_lock", "content_hash", "tantivy_ids"]

logger = logging.getLogger(__name__)

LOCK_FILE = "write.lock"
#: Compact automatically at close when dead rows are at least this share of the vector file (and 1 MiB).
AUTO_COMPACT_SHARE = 0.25
_AUTO_COMPACT_MIN_BYTES = 1 << 20


def content_hash(doc: Document, cfg: IndexConfig) -> str:
    """What makes a document's stored state: its fields, the passage settings and the encoder (sha1 of
    ``json.dumps([doc, passages, fingerprint], sort_keys=True)``)."""
    return _hash_json(doc.to_json(), _hash_tail(cfg))


def _hash_tail(cfg: IndexConfig) -> str:
    """The part of :func:`content_hash`'s payload after the document, the same for every document of an index."""
    return (
        ", "
        + json.dumps(asdict(cfg.passages), sort_keys=True)
        + ", "
        + json.dumps(cfg.encoder.get("fingerprint"))
        + "]"
    )


def _hash_json(doc_json: dict[str, Any], tail: str) -> str:
    payload = "[" + json.dumps(doc_json, sort_keys=True) + tail  # byte for byte json.dumps of the whole list
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()


@contextmanager
def write_lock(index_path: str | os.PathLike[str], wait: bool = False) -> Iterator[Any]:
    """Hold ``write.lock`` (flock) for the block; the file records the holder's pid.

    Raises:
        IndexLockedError: another process or writer holds it (and ``wait`` is false).
    """
    path = Path(index_path)
    fh = open(path / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise IndexLockedError(
                f"index {path} is locked by another writer (pid {holder}); an embedded index has one writer at a "
                "time. Wait for it to finish, or use the Elasticsearch backend for concurrent writers."
            ) from None
        fh.truncate(0)
        fh.write(str(os.getpid()))
        fh.flush()
        yield fh
    finally:
        fh.close()  # closing the descriptor releases the flock


@dataclass
class RecoveryReport:
    """What opening the index had to reconcile after an interrupted commit (all zero after a clean close)."""

    truncated_rows: int = 0
    replayed_ops: int = 0
    orphans_deleted: int = 0
    stale_files_removed: int = 0
    seconds: float = 0.0

    @property
    def anything(self) -> bool:
        return bool(self.truncated_rows or self.replayed_ops or self.orphans_deleted or self.stale_files_removed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tantivy_ids(index: Any) -> list[str]:
    """Every document id in a tantivy index (a full scan: recovery and checks only)."""
    import tantivy

    index.reload()
    searcher = index.searcher()
    n = searcher.num_docs
    if not n:
        return []
    result = searcher.search(tantivy.Query.all_query(), n)
    return [searcher.doc(addr)["id"][0] for _, addr in result.hits]


def recover(index: WritableIndex, con: sqlite3.Connection, tw: Any) -> RecoveryReport:
    """Reconcile the three stores with the last commit point (the caller holds ``write.lock``).

    Runs the checks of :func:`read_snapshot` first: a mismatch raises
    :class:`~es_biomed.errors.IndexCorruptError` before anything is written.
    """
    t0 = time.perf_counter()
    report = RecoveryReport()
    path = index.path
    dims = index.config.dims
    ensure_schema(con, path, dims)
    snap = read_snapshot(path, dims, con)
    vec = path / snap.vector_file
    row_bytes = 4 * dims
    if vec.exists():
        size = vec.stat().st_size
        if size > snap.vector_rows * row_bytes:  # rows of a commit that never happened, or a torn row
            report.truncated_rows = -(-(size - snap.vector_rows * row_bytes) // row_bytes)
            os.truncate(vec, snap.vector_rows * row_bytes)
    else:
        vec.touch()
    for stale in path.glob("vectors*.f32"):
        if stale.name != snap.vector_file:  # a compaction that stopped before its commit, or one already done
            stale.unlink()
            report.stale_files_removed += 1
    if snap.pending_ops:
        report.replayed_ops = _replay_translog(index, con, tw)
    # tantivy documents the document table does not hold: an interrupted commit of the old format
    n_bm25 = _num_docs(index)
    if n_bm25 != len(snap.ids):
        known = set(snap.ids)
        orphans = sorted({d for d in tantivy_ids(index.tantivy_index) if d not in known})
        for doc_id in orphans:
            tw.delete_documents_by_term("id", doc_id)
        if orphans:
            tw.commit()
            report.orphans_deleted = len(orphans)
    report.seconds = round(time.perf_counter() - t0, 4)
    if report.anything:
        logger.warning("index %s: recovered an interrupted commit: %s", path, report.to_dict())
    return report


def _num_docs(index: WritableIndex) -> int:
    index.tantivy_index.reload()
    return int(index.tantivy_index.searcher().num_docs)


def _replay_translog(index: WritableIndex, con: sqlite3.Connection, tw: Any) -> int:
    """Apply the committed BM25 operations tantivy may lack (idempotent), commit tantivy, empty the translog."""
    import tantivy as T

    ops = con.execute("SELECT seq, doc_id, op, fields FROM translog ORDER BY rowid").fetchall()
    for _, doc_id, op, fields in ops:
        tw.delete_documents_by_term("id", doc_id)
        if op == "index":
            tw.add_document(T.Document(**json.loads(fields)))
    tw.commit()
    last = max(seq for seq, *_ in ops)
    con.execute("BEGIN IMMEDIATE")
    con.execute("DELETE FROM translog WHERE seq <= ?", (last,))
    con.execute("UPDATE meta SET value = ? WHERE key = 'tantivy_seq'", (str(last),))
    con.execute("COMMIT")
    return len(ops)


class IndexWriter:
    """The one writer of an embedded index. Use as a context manager; it commits on exit, also when an
    exception escapes, so documents already accepted are kept.

    Args:
        index: The index to write.
        heap_size: tantivy's indexing memory.
        commit_every: Commit after this many written documents (``None``: only on :meth:`commit` and at close).
        commit_interval: Also commit when this many seconds have passed since the last commit.
        auto_compact: At close, compact when dead vector rows are at least this share of the file (``None``: never).
        ann: The ANN graph (:mod:`~es_biomed.backends.embedded.ann`): ``auto`` keeps the one the index has and
            builds one at close once the index holds ``EXACT_BELOW_ROWS`` live vector rows; ``on`` builds one (with
            ``ann_settings``) whatever the size; ``off`` builds none (one the index already has is still kept up
            to date: ``es-biomed ann drop`` removes it).
        ann_settings: The graph's settings for a new graph (default :class:`AnnSettings`); settings that differ
            from the present graph's build settings rebuild it.
        ann_save_interval: Also save the graph after a commit when this many seconds have passed since the last
            save (readers scan the rows past the graph exactly meanwhile).

    Raises:
        IndexLockedError: another process or writer holds the index.
        IndexCorruptError: the stores disagree in a way recovery cannot prove safe (nothing is written).
    """

    def __init__(
        self,
        index: WritableIndex,
        heap_size: int = 128_000_000,
        commit_every: int | None = None,
        commit_interval: float | None = None,
        auto_compact: float | None = AUTO_COMPACT_SHARE,
        ann: Literal["auto", "on", "off"] = "auto",
        ann_settings: AnnSettings | None = None,
        ann_save_interval: float = 300.0,
    ) -> None:
        if ann not in ("auto", "on", "off"):
            raise ValueError(f"ann must be auto, on or off, got {ann!r}")
        if commit_every is not None and commit_every < 1:
            raise ValueError(f"commit_every must be at least 1, got {commit_every}")
        if commit_interval is not None and commit_interval <= 0:
            raise ValueError(f"commit_interval must be positive, got {commit_interval}")
        self.index = index
        self.path = index.path
        self.dims = index.config.dims
        self.commit_every = commit_every
        self.commit_interval = commit_interval
        self.auto_compact = auto_compact
        self.ann_policy = ann
        self.ann_settings = ann_settings
        self.ann_save_interval = ann_save_interval
        self._ann: AnnWriter | None = None
        #: What the last save of the ANN graph recorded (None: not saved by this writer).
        self.ann_saved: dict[str, Any] | None = None
        self._lock_cm = write_lock(self.path)
        self._lock_cm.__enter__()
        self._con: sqlite3.Connection | None = None
        self._vec: Any = None
        try:
            try:
                self._tw = index.tantivy_index.writer(heap_size=heap_size, num_threads=1)
            except ValueError as exc:
                raise IndexLockedError(f"index {self.path}: tantivy writer lock is held: {exc}") from None
            self._con = connect(self.path, write=True)
            self.recovery = recover(index, self._con, self._tw)
            self._open_vectors()
            if ann == "on" or index.config.ann is not None:
                self._start_ann()
        except BaseException:
            self._release()
            raise
        self.added = 0
        self.unchanged = 0
        self.commits = 0
        self._in_txn = False
        self._uncommitted = 0
        self._last_commit = time.monotonic()
        self._closed = False

    def _open_vectors(self) -> None:
        snap = read_snapshot(self.path, self.dims, self._con)
        self.vector_file = snap.vector_file
        self._seq = snap.commit_seq
        self._next_row = snap.vector_rows
        self._vec = open(self.path / snap.vector_file, "ab")

    def _start_ann(self) -> None:
        """Enable the graph in ``es_biomed.json`` where asked, and load (or start) it."""
        cfg = self.index.config
        wanted = self.ann_settings or cfg.ann or AnnSettings()
        if cfg.ann != wanted:
            cfg = replace(cfg, ann=wanted)
            cfg.write(self.path)
            self.index.config = cfg
        self._ann = AnnWriter(self.path, wanted, str(cfg.encoder.get("fingerprint")), self.dims, self.vector_file)

    def save_ann(self) -> dict[str, Any] | None:
        """Bring the graph up to the last commit and save it (a new generation); None if there is no graph."""
        if self._ann is None:
            return None
        snap = self.snapshot()
        if snap.vector_file != self._ann.vector_file:
            self._ann.reset(snap.vector_file)
        vectors = (
            np.memmap(self.path / snap.vector_file, dtype=np.float32, mode="r", shape=(snap.vector_rows, self.dims))
            if snap.vector_rows
            else np.zeros((0, self.dims), dtype=np.float32)
        )
        row_live, _ = row_owners(snap.row_start, snap.row_count, snap.vector_rows)
        t0 = time.perf_counter()
        added = self._ann.sync(vectors, row_live)
        seconds = time.perf_counter() - t0
        del vectors
        if not self._ann.dirty:
            return self.ann_saved
        self.ann_saved = {**self._ann.save(), "added": added, "add_seconds": round(seconds, 3)}
        logger.info("index %s: ANN index saved: %s", self.path, self.ann_saved)
        return self.ann_saved

    def _release(self) -> None:
        if self._vec is not None:
            self._vec.close()
        if self._con is not None:
            self._con.close()
        self._lock_cm.__exit__(None, None, None)

    # ------------------------------------------------------------------ writes
    def _begin(self) -> None:
        if not self._in_txn:
            self._con.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
            self._in_txn = True

    def _hashes(self, ids: Sequence[str]) -> dict[str, str]:
        out = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            q = f"SELECT doc_id, hash FROM docs WHERE doc_id IN ({','.join('?' * len(chunk))})"
            out.update(dict(self._con.execute(q, chunk).fetchall()))  # type: ignore[union-attr]
        return out

    def pending(self, docs: Sequence[Document]) -> list[Document]:
        """The documents that are new or changed (unchanged ones need no embedding); last copy of an id wins."""
        latest = {d.id: d for d in docs}
        known = self._hashes(list(latest))
        tail = _hash_tail(self.index.config)
        fresh = [d for d in latest.values() if known.get(d.id) != _hash_json(d.to_json(), tail)]
        self.unchanged += len(latest) - len(fresh)
        return fresh

    def upsert(self, docs: Sequence[Document], passage_vectors: Sequence[np.ndarray]) -> None:
        """Write documents with their passage vectors (``[n_passages, dims]`` each), replacing same ids; commits
        when the ``commit_every`` / ``commit_interval`` policy says so."""
        if len(docs) != len(passage_vectors):
            raise ValueError(f"{len(docs)} documents but {len(passage_vectors)} vector blocks")
        blocks = []
        for doc, vecs in zip(docs, passage_vectors, strict=True):
            vecs = np.ascontiguousarray(vecs, dtype=np.float32)
            if vecs.ndim != 2 or vecs.shape[1] != self.dims:
                raise EncoderMismatchError(
                    f"document {doc.id!r}: vectors of shape {vecs.shape}, index expects [*, {self.dims}]"
                )
            blocks.append(vecs)
        import tantivy as T

        tail = _hash_tail(self.index.config)
        self._begin()
        rows, log = [], []
        for doc, vecs in zip(docs, blocks, strict=True):
            self._vec.write(vecs.tobytes())
            start, self._next_row = self._next_row, self._next_row + len(vecs)
            fields = doc_fields(doc)
            self._tw.delete_documents_by_term("id", doc.id)
            self._tw.add_document(T.Document(**fields))
            doc_json = doc.to_json()
            stored = {k: v for k, v in doc_json.items() if k != "body" and v not in ("", [])}
            rows.append(
                (
                    doc.id,
                    start,
                    len(vecs),
                    fields.get("year"),
                    doc.source,
                    _hash_json(doc_json, tail),
                    json.dumps(stored, ensure_ascii=False),
                )
            )
            log.append((self._seq + 1, doc.id, fields_json(fields)))
        con = self._con
        assert con is not None
        con.executemany("INSERT OR REPLACE INTO docs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        con.executemany("INSERT INTO translog VALUES (?, ?, 'index', ?)", log)
        self.added += len(rows)
        self._uncommitted += len(rows)
        self._maybe_commit()

    def add(self, docs: Sequence[Document], encoder: Encoder, batch_size: int = 32) -> int:
        """Split, embed and upsert ``docs``; unchanged documents are skipped. Returns how many were written."""
        self.index.check_encoder(encoder.info)
        fresh = self.pending(docs)
        if not fresh:
            return 0
        _, blocks = embed_passages(fresh, encoder, self.index.config.passages, batch_size)
        self.upsert(fresh, blocks)
        return len(fresh)

    def delete(self, doc_ids: Iterable[str]) -> None:
        self._begin()
        for doc_id in doc_ids:
            self._tw.delete_documents_by_term("id", doc_id)
            self._con.execute("DELETE FROM docs WHERE doc_id = ?", (doc_id,))  # type: ignore[union-attr]
            self._con.execute("INSERT INTO translog VALUES (?, ?, 'delete', NULL)", (self._seq + 1, doc_id))  # type: ignore[union-attr]
            self._uncommitted += 1
        self._maybe_commit()

    def _maybe_commit(self) -> None:
        due = self.commit_every is not None and self._uncommitted >= self.commit_every
        due = due or (
            self.commit_interval is not None and time.monotonic() - self._last_commit >= self.commit_interval
        )
        if due:
            self.commit()

    def commit(self) -> None:
        """Commit what was written since the last commit, atomically across the three stores (see the protocol)."""
        self._last_commit = time.monotonic()
        if not self._in_txn:
            return
        con = self._con
        assert con is not None
        # 1. vectors durable
        self._vec.flush()
        os.fsync(self._vec.fileno())
        # 2. the commit point: document rows, translog, committed vector rows, sequence number
        seq = self._seq + 1
        con.execute("UPDATE meta SET value = ? WHERE key = 'vector_rows'", (str(self._next_row),))
        con.execute("UPDATE meta SET value = ? WHERE key = 'commit_seq'", (str(seq),))
        con.execute("COMMIT")
        self._in_txn = False
        self._seq = seq
        self._uncommitted = 0
        self.commits += 1
        # 3. BM25 (the same operations, buffered in tantivy's writer), 4. the translog is no longer needed
        self._tw.commit()
        con.execute("BEGIN IMMEDIATE")
        con.execute("DELETE FROM translog WHERE seq <= ?", (seq,))
        con.execute("UPDATE meta SET value = ? WHERE key = 'tantivy_seq'", (str(seq),))
        con.execute("COMMIT")
        # 5. the ANN graph, now and then (readers scan the rows past it exactly)
        if self._ann is not None and time.monotonic() - self._ann.last_save >= self.ann_save_interval:
            self.save_ann()

    def snapshot(self) -> DocSnapshot:
        """The committed state (as readers see it)."""
        return read_snapshot(self.path, self.dims, self._con)

    def compact(self) -> dict[str, Any]:
        """Commit, then rewrite the vector file without dead rows (:func:`~es_biomed.backends.embedded.store.compact_vectors`)."""
        self.commit()
        self._vec.close()
        self._vec = None
        try:
            report = compact_vectors(self.path, self.dims, self._con)  # type: ignore[arg-type]
        finally:
            self._open_vectors()
        if self._ann is not None and report["vector_file"] != self._ann.vector_file:
            self._ann.reset(report["vector_file"])  # rows were renumbered: the graph is rebuilt at close
        return report

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.commit()
            self._tw.wait_merging_threads()
            if self.auto_compact is not None:
                snap = self.snapshot()
                dead_bytes = snap.dead_rows * 4 * self.dims
                if (
                    snap.vector_rows
                    and snap.dead_rows >= self.auto_compact * snap.vector_rows
                    and dead_bytes >= _AUTO_COMPACT_MIN_BYTES
                ):
                    logger.info("index %s: compacting %d dead vector rows", self.path, snap.dead_rows)
                    self.compact()
            if self._ann is None and self.ann_policy == "auto" and self.snapshot().live_rows >= EXACT_BELOW_ROWS:
                self._start_ann()
            self.save_ann()
            logger.info(
                "index %s: committed; %d written, %d unchanged in this session", self.path, self.added, self.unchanged
            )
        finally:
            if self._in_txn:  # an error in commit: the open transaction is not the commit point; drop it
                try:
                    self._con.execute("ROLLBACK")  # type: ignore[union-attr]
                except sqlite3.Error:
                    pass
            self._release()
            self.index.reload()

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
