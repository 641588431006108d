"""The embedded engine's three stores, and the commit protocol that keeps them one index.

An index directory holds::

    es_biomed.json     IndexConfig: encoder identity, passage and analyzer settings (written once, atomically)
    tantivy/           BM25: id, title, abstract, body (analyzed), source (keyword), year (int)
    docs.sqlite        the document table (SQLite in WAL mode) and the commit record:
                         docs(doc_id, row_start, row_count, year, source, hash, stored)
                         meta(key, value): format, dims, vector_file, vector_rows, commit_seq, tantivy_seq
                         translog(seq, doc_id, op, fields): the BM25 operations of commits not yet in tantivy
    vectors[.N].f32    float32 passage vectors, row-major [rows, dims], append-only (named by meta.vector_file)
    write.lock         held (flock) by the single writer

**The commit protocol** (one writer; every batch, or every N documents or T seconds):

1. The batch's vectors are appended past ``vector_rows`` and the vector file is fsynced.
2. One SQLite transaction writes the batch's document rows, its BM25 operations (the full documents) into
   ``translog``, ``vector_rows`` and ``commit_seq + 1``. **Its COMMIT is the commit point** (WAL,
   ``synchronous=FULL``): a batch is in the index exactly when this transaction is.
3. tantivy applies the same operations (delete by id, add) and commits (tantivy's own atomic meta swap).
4. A second SQLite transaction empties ``translog`` and sets ``tantivy_seq = commit_seq``.

**Recovery on open.** Whoever opens the index next (the writer; or any reader that can take ``write.lock``
because no writer holds it) reconciles the stores with the last commit point:

* vector rows past ``vector_rows`` (a crash in step 1 or 2) are truncated: they belong to no commit;
* a non-empty ``translog`` (a crash in step 3 or 4) is replayed into tantivy (delete + add is idempotent) and
  committed, then emptied;
* tantivy documents without a row in the document table (an interrupted commit of an older format) are deleted;
* vector files other than ``vector_file`` (a compaction that stopped before its commit) are removed.

A crash therefore loses at most the batch in flight, and a re-run completes it (ids and content hashes are
deterministic, so the documents already committed are skipped).

**Readers never wait.** A reader reads the document table and ``meta`` in one WAL snapshot (never blocked by the
writer's open transaction), maps exactly ``vector_rows`` rows of ``vector_file``, and keeps from tantivy only ids
that snapshot holds. tantivy is reloaded before the snapshot is read, so it is never ahead of it.

**Integrity on open.** :func:`read_snapshot` refuses, naming the file and the command that repairs it: a missing or
unreadable ``docs.sqlite``; dims that differ from the encoder recorded in ``es_biomed.json``; a vector file shorter
than the committed rows; a document whose rows lie past them. The writer runs the same checks first, so nothing is
ever written past a mismatch.
"""

from __future__ import annotations

import json
import mmap
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.errors import IndexCorruptError

__all__ = [
    "DOCS_FILE",
    "LEGACY_VECTOR_FILE",
    "STORE_FORMAT",
    "DocSnapshot",
    "compact_vectors",
    "connect",
    "ensure_schema",
    "pending_ops",
    "commit_seq",
    "doc_fields",
    "read_meta",
    "read_snapshot",
    "advise_random",
    "fsync_path",
    "repair_hint",
    "row_owners",
    "rebuild_hint",
    "vector_file_rows",
]

DOCS_FILE = "docs.sqlite"
LEGACY_VECTOR_FILE = "vectors.f32"
#: 1: the document table only (commit at close, rollback journal); 2: WAL, meta and translog (this protocol).
STORE_FORMAT = 2
_BUSY_TIMEOUT_MS = 30_000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS docs (doc_id TEXT PRIMARY KEY, row_start INTEGER NOT NULL, row_count INTEGER NOT NULL,"
    " year INTEGER, source TEXT, hash TEXT NOT NULL, stored TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS translog (seq INTEGER NOT NULL, doc_id TEXT NOT NULL, op TEXT NOT NULL, fields TEXT)",
)


def repair_hint(path: str | os.PathLike[str]) -> str:
    return f"Run `es-biomed repair {path}` (keeps every document it can prove; re-run `es-biomed index` after it)"


def rebuild_hint(path: str | os.PathLike[str]) -> str:
    return f"Rebuild it: `es-biomed index CORPUS --index NEW_DIR`, then replace {path} with NEW_DIR"


def connect(index_path: str | os.PathLike[str], *, write: bool = False) -> sqlite3.Connection:
    """A connection to the document table, in autocommit mode (transactions are explicit).

    Readers open it read-write without creating it (``mode=rw``), so SQLite itself rolls back a hot journal left
    by a crashed writer of the old format; they only ever read. The writer also sets WAL and ``synchronous=FULL``.

    Raises:
        IndexCorruptError: the file is missing or is not an SQLite database (named, with the way out).
    """
    path = Path(index_path)
    db = path / DOCS_FILE
    if not db.is_file():
        raise IndexCorruptError(
            str(db),
            "the document table is missing",
            f"It cannot be rebuilt from the other stores. {rebuild_hint(path)}",
        )
    try:
        con = sqlite3.connect(
            f"file:{db}?mode=rw", uri=True, isolation_level=None, check_same_thread=False, timeout=30
        )
        con.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        if write:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(
            str(db), f"not a readable document table ({exc})", f"It cannot be repaired. {rebuild_hint(path)}"
        ) from None
    return con


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def read_meta(con: sqlite3.Connection) -> dict[str, str]:
    """The commit record (empty for an index of the old format, which has no ``meta`` table)."""
    if "meta" not in _tables(con):
        return {}
    return dict(con.execute("SELECT key, value FROM meta").fetchall())


def ensure_schema(con: sqlite3.Connection, index_path: str | os.PathLike[str], dims: int) -> dict[str, str]:
    """Create the tables, or bring an index of the old format to this one (the writer only; in one transaction).

    An old-format index keeps ``vectors.f32``; its committed rows are the whole rows of that file, checked against
    the document table by :func:`read_snapshot` before anything is written. Returns the commit record.
    """
    con.execute("BEGIN IMMEDIATE")
    try:
        for stmt in _SCHEMA:
            con.execute(stmt)
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            vec = Path(index_path) / LEGACY_VECTOR_FILE
            rows = vector_file_rows(vec, dims) if vec.exists() else 0
            meta = {
                "format": str(STORE_FORMAT),
                "dims": str(dims),
                "vector_file": LEGACY_VECTOR_FILE,
                "vector_rows": str(rows),
                "commit_seq": "0",
                "tantivy_seq": "0",
            }
            con.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return meta


def vector_file_rows(path: Path, dims: int) -> int:
    """Whole rows in a vector file (a torn last row is not counted)."""
    return path.stat().st_size // (4 * dims)


@dataclass(frozen=True)
class DocSnapshot:
    """The document table and commit record as of one committed state."""

    ids: list[str]
    row_start: np.ndarray
    row_count: np.ndarray
    year: np.ndarray
    source: np.ndarray
    vector_file: str
    vector_rows: int
    commit_seq: int
    tantivy_seq: int
    pending_ops: int
    store_format: int

    @property
    def live_rows(self) -> int:
        return int(self.row_count.sum())

    @property
    def dead_rows(self) -> int:
        return self.vector_rows - self.live_rows


def read_snapshot(index_path: str | os.PathLike[str], dims: int, con: sqlite3.Connection | None = None) -> DocSnapshot:
    """Read the committed state in one WAL snapshot and check it against the vector file.

    Raises:
        IndexCorruptError: the document table is missing or unreadable, dims disagree with ``es_biomed.json``, the
            vector file is missing or shorter than the committed rows, or a document points past them.
    """
    path = Path(index_path)
    own = con is None
    con = con or connect(path)
    try:
        con.execute("BEGIN")
        try:
            tables = _tables(con)
            if "docs" not in tables:
                raise IndexCorruptError(
                    str(path / DOCS_FILE), "no `docs` table: not an es-biomed document table", rebuild_hint(path)
                )
            meta = read_meta(con)
            rows = con.execute(
                "SELECT doc_id, row_start, row_count, year, source FROM docs ORDER BY row_start"
            ).fetchall()
            pending = con.execute("SELECT count(*) FROM translog").fetchone()[0] if "translog" in tables else 0
        finally:
            con.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(
            str(path / DOCS_FILE), f"the document table cannot be read ({exc})", rebuild_hint(path)
        ) from None
    finally:
        if own:
            con.close()
    if meta and int(meta.get("dims", dims)) != dims:
        raise IndexCorruptError(
            str(path / DOCS_FILE),
            f"vectors are recorded with {meta['dims']} dims but es_biomed.json's encoder has {dims}",
            rebuild_hint(path),
        )
    vector_file = meta.get("vector_file", LEGACY_VECTOR_FILE)
    vec = path / vector_file
    row_start = np.array([r[1] for r in rows], dtype=np.int64)
    row_count = np.array([r[2] for r in rows], dtype=np.int64)
    needed = int((row_start + row_count).max()) if len(rows) else 0
    if not vec.is_file():
        if needed or int(meta.get("vector_rows", 0)):
            raise IndexCorruptError(str(vec), "the vector file is missing", repair_hint(path))
        on_disk = 0
    else:
        on_disk = vector_file_rows(vec, dims)
    committed = int(meta["vector_rows"]) if "vector_rows" in meta else on_disk
    if on_disk < committed:
        raise IndexCorruptError(
            str(vec),
            f"holds {on_disk} vector rows of {dims} dims but {committed} are committed (truncated or replaced)",
            repair_hint(path),
        )
    if needed > committed:
        raise IndexCorruptError(
            str(vec),
            f"documents in {DOCS_FILE} point to vector rows up to {needed}, but only {committed} are committed",
            repair_hint(path),
        )
    return DocSnapshot(
        ids=[r[0] for r in rows],
        row_start=row_start,
        row_count=row_count,
        year=np.array([r[3] if r[3] is not None else -1 for r in rows], dtype=np.int64),
        source=np.array([r[4] or "" for r in rows], dtype=object),
        vector_file=vector_file,
        vector_rows=committed,
        commit_seq=int(meta.get("commit_seq", 0)),
        tantivy_seq=int(meta.get("tantivy_seq", 0)),
        pending_ops=int(pending),
        store_format=int(meta.get("format", 1)),
    )


def row_owners(row_start: np.ndarray, row_count: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per vector row: whether a document owns it, and that document's position (-1 for a dead row)."""
    row_doc = np.full(rows, -1, dtype=np.int64)
    total = int(row_count.sum())
    if total:
        offsets = np.concatenate(([0], np.cumsum(row_count)[:-1]))
        owned = np.repeat(row_start, row_count) + (np.arange(total) - np.repeat(offsets, row_count))
        row_doc[owned] = np.repeat(np.arange(len(row_start)), row_count)
    return row_doc >= 0, row_doc


def advise_random(vectors: np.ndarray) -> None:
    """Reads of a few rows (a rerank window, the graph's candidates) should map those pages only: without this the
    kernel's readahead maps 128 KiB around each row, and at a million documents a few hundred searches map the whole
    vector file (1M documents, 800 searches of every mode: RSS 2.5 GB, 1.5 GB with this advice; the process's own memory is 430 MiB either way). An exact scan still reads every page."""
    mm = getattr(vectors, "_mmap", None)
    if mm is not None and hasattr(mm, "madvise"):
        try:
            mm.madvise(mmap.MADV_RANDOM)
        except (OSError, ValueError):  # not every platform or file system takes the advice
            pass


def commit_seq(con: sqlite3.Connection) -> int:
    """The last commit's sequence number (cheap: what a reader polls to know whether to reload)."""
    row = con.execute("SELECT value FROM meta WHERE key = 'commit_seq'").fetchone() if "meta" in _tables(con) else None
    return int(row[0]) if row else 0


def pending_ops(con: sqlite3.Connection) -> int:
    """Committed BM25 operations tantivy may not have applied yet (non-zero after a crash in steps 3-4)."""
    if "translog" not in _tables(con):
        return 0
    return int(con.execute("SELECT count(*) FROM translog").fetchone()[0])


def fsync_path(path: Path) -> None:
    """fsync a file, or a directory (so that a rename or a new file in it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def compact_vectors(index_path: str | os.PathLike[str], dims: int, con: sqlite3.Connection) -> dict[str, Any]:
    """Rewrite the vector file without dead rows, atomically (the caller is the writer, with nothing uncommitted).

    The live rows are copied, in row order, into a new file ``vectors.<seq>.f32``, which is fsynced; one SQLite
    transaction then moves every document's ``row_start`` and points ``vector_file`` at the new file (the commit
    point); the old file is removed after it. Readers keep the file they mapped until they reload (its data stays
    readable after the unlink); a crash before the commit leaves the new file behind, and recovery removes it.
    Returns the rows and bytes before and after.
    """
    path = Path(index_path)
    snap = read_snapshot(path, dims, con)
    old = path / snap.vector_file
    row_bytes = 4 * dims
    before = {"rows": snap.vector_rows, "bytes": snap.vector_rows * row_bytes}
    if not snap.dead_rows:
        return {"before": before, "after": before, "reclaimed_bytes": 0, "vector_file": snap.vector_file}
    new_name = f"vectors.{snap.commit_seq + 1}.f32"
    new = path / new_name
    moves = []
    src = np.memmap(old, dtype=np.float32, mode="r", shape=(snap.vector_rows, dims)) if snap.vector_rows else None
    with open(new, "wb") as out:
        next_row = 0
        for doc_id, start, count in zip(snap.ids, snap.row_start, snap.row_count, strict=True):
            if count:
                out.write(np.ascontiguousarray(src[start : start + count]).tobytes())  # type: ignore[index]
            moves.append((next_row, doc_id))
            next_row += int(count)
        out.flush()
        os.fsync(out.fileno())
    del src
    fsync_path(path)
    con.execute("BEGIN IMMEDIATE")
    try:
        con.executemany("UPDATE docs SET row_start = ? WHERE doc_id = ?", moves)
        con.execute("UPDATE meta SET value = ? WHERE key = 'vector_file'", (new_name,))
        con.execute("UPDATE meta SET value = ? WHERE key = 'vector_rows'", (str(next_row),))
        con.execute("UPDATE meta SET value = ? WHERE key = 'commit_seq'", (str(snap.commit_seq + 1),))
        con.execute("UPDATE meta SET value = ? WHERE key = 'tantivy_seq'", (str(snap.commit_seq + 1),))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        new.unlink(missing_ok=True)
        raise
    old.unlink(missing_ok=True)
    after = {"rows": next_row, "bytes": next_row * row_bytes}
    return {
        "before": before,
        "after": after,
        "reclaimed_bytes": before["bytes"] - after["bytes"],
        "vector_file": new_name,
    }


def doc_fields(doc: Any) -> dict[str, Any]:
    """The tantivy fields of a :class:`~es_biomed.corpus.types.Document` (also what the translog stores)."""
    fields: dict[str, Any] = {
        "id": doc.id,
        "title": doc.title,
        "abstract": doc.abstract,
        "body": doc.body,
        "source": doc.source,
    }
    if doc.year is not None:
        fields["year"] = doc.year
    return fields


def fields_json(fields: dict[str, Any]) -> str:
    return json.dumps(fields, ensure_ascii=False)
