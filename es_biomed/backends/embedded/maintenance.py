"""Check, repair and compact an embedded index (``es-biomed check | repair | compact INDEX``).

* :func:`check_index` opens the index as every reader does (an abandoned commit is recovered first), then verifies
  the invariants of :mod:`es_biomed.backends.embedded.store`: the stores agree on the document set, no id appears
  twice, every document's vector rows are committed and belong to it alone, the vectors are finite and unit
  length, dims agree with the recorded encoder. Nothing is written beyond the recovery.
* :func:`repair_index` makes a damaged index consistent again, keeping every document it can prove (its row in the
  document table, its vectors inside the file, its BM25 document) and dropping the others, so that a re-run of
  ``es-biomed index`` over the corpus restores them (their ids are then unknown, so they are embedded again).
* :func:`compact_index` rewrites the vector file without dead rows while readers keep working.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from dataclasses import replace as replace_config
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.backends.embedded.ann import AnnSettings, drop_ann
from es_biomed.backends.embedded.config import META_FILE
from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.backends.embedded.store import (
    DOCS_FILE,
    connect,
    ensure_schema,
    read_meta,
    vector_file_rows,
)
from es_biomed.backends.embedded.writer import tantivy_ids, write_lock
from es_biomed.errors import EsBiomedError, IndexCorruptError

__all__ = ["Invariant", "CheckReport", "RepairReport", "check_index", "repair_index", "compact_index"]

_NORM_TOLERANCE = 1e-3
_CHUNK_ROWS = 65_536


@dataclass
class Invariant:
    name: str
    ok: bool
    detail: str


@dataclass
class CheckReport:
    index: str
    invariants: list[Invariant] = field(default_factory=list)
    documents: int = 0
    vector_rows: int = 0
    dead_rows: int = 0
    recovery: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.invariants)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.invariants.append(Invariant(name, bool(ok), detail))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def check_index(path: str | os.PathLike[str]) -> CheckReport:
    """Verify every invariant of the index at ``path``; the report says which hold (``report.ok``: all)."""
    t0 = time.perf_counter()
    p = Path(path)
    report = CheckReport(index=str(p))
    try:
        idx = EmbeddedIndex(p)
    except (IndexCorruptError, EsBiomedError) as exc:
        report.add("opens", False, str(exc))
        report.seconds = round(time.perf_counter() - t0, 3)
        return report
    report.add("opens", True, f"{META_FILE}, {DOCS_FILE}, tantivy/ and the vector file open")
    if idx.recovery is not None:
        report.recovery = idx.recovery.to_dict()
    view = idx.view_of_commit()
    docs = view.docs
    report.documents, report.vector_rows, report.dead_rows = len(docs.ids), docs.vector_rows, docs.dead_rows
    dims = idx.config.dims
    con = connect(p)
    try:
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        meta = read_meta(con)
    finally:
        con.close()
    report.add("document table intact", integrity == "ok", f"SQLite integrity_check: {integrity}")
    report.add(
        "dims agree",
        not meta or int(meta.get("dims", dims)) == dims,
        f"{DOCS_FILE} records {meta.get('dims', '(old format)')} dims; the encoder {dims}",
    )
    on_disk = vector_file_rows(p / docs.vector_file, dims) if (p / docs.vector_file).exists() else 0
    report.add(
        "vectors committed",
        on_disk >= docs.vector_rows,
        f"{docs.vector_file}: {on_disk} rows on disk, {docs.vector_rows} committed",
    )
    ends = docs.row_start + docs.row_count
    order = np.argsort(docs.row_start, kind="stable")
    overlaps = int(np.sum(docs.row_start[order][1:] < ends[order][:-1])) if len(order) > 1 else 0
    report.add(
        "rows belong to one document",
        overlaps == 0 and (not len(ends) or int(ends.max()) <= docs.vector_rows),
        f"{overlaps} overlapping row ranges; last row used {int(ends.max()) if len(ends) else 0}",
    )
    dup_ids = len(docs.ids) - len(set(docs.ids))
    bm25_ids = tantivy_ids(idx.tantivy_index)
    counts = Counter(bm25_ids)
    twice = sorted(d for d, c in counts.items() if c > 1)
    report.add("no id twice", not twice and not dup_ids, f"{len(twice)} ids twice in BM25 {twice[:5]}")
    known = set(docs.ids)
    only_bm25 = sorted(set(counts) - known)
    only_docs = sorted(known - set(counts))
    report.add(
        "BM25 and documents agree",
        not only_bm25 and not only_docs,
        f"{len(only_bm25)} only in BM25 {only_bm25[:5]}, {len(only_docs)} only in {DOCS_FILE} {only_docs[:5]}",
    )
    bad = _bad_vectors(view.vectors, view.dead_rows)
    report.add("vectors finite and unit length", bad == 0, f"{bad} live rows not finite or not of norm 1")
    report.add("no interrupted commit", docs.pending_ops == 0, f"{docs.pending_ops} BM25 operations pending")
    if view.ann.settings is not None:  # the graph opened (a missing or damaged one fails "opens"): is it current?
        report.add("ANN graph current", view.ann.usable, view.ann.reason)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _bad_vectors(vectors: np.ndarray, dead_rows: np.ndarray) -> int:
    dead = np.zeros(len(vectors), dtype=bool)
    dead[dead_rows] = True
    bad = 0
    for start in range(0, len(vectors), _CHUNK_ROWS):
        chunk = np.asarray(vectors[start : start + _CHUNK_ROWS])
        norms = np.linalg.norm(chunk, axis=1)
        wrong = ~np.isfinite(norms) | (np.abs(norms - 1.0) > _NORM_TOLERANCE)
        bad += int(np.sum(wrong & ~dead[start : start + len(chunk)]))
    return bad


@dataclass
class RepairReport:
    index: str
    dropped: list[str] = field(default_factory=list)
    bm25_deleted: int = 0
    truncated_rows: int = 0
    recovery: dict[str, Any] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dropped": len(self.dropped), "dropped_ids": self.dropped[:20]}


def repair_index(path: str | os.PathLike[str]) -> RepairReport:
    """Make the index at ``path`` consistent, keeping every document it can prove.

    A document is kept when its row is in the document table, its vector rows lie inside the vector file's whole
    rows, and BM25 holds it exactly once; the others are removed from every store (re-run ``es-biomed index`` to
    restore them). The committed row count becomes what the file proves. One transaction, under the write lock.

    Raises:
        IndexCorruptError: the configuration, the document table or the BM25 store cannot be opened (rebuild).
        IndexLockedError: a writer holds the index.
    """
    import json

    import tantivy

    from es_biomed.backends.embedded.config import IndexConfig
    from es_biomed.query.analysis import ANALYZER_NAME, build_analyzer

    t0 = time.perf_counter()
    p = Path(path)
    report = RepairReport(index=str(p))
    meta_file = p / META_FILE
    if not meta_file.is_file():
        raise IndexCorruptError(str(meta_file), "missing: no es-biomed index here", "Create it with `es-biomed index`")
    cfg = IndexConfig.from_dict(json.loads(meta_file.read_text()))
    dims = cfg.dims
    with write_lock(p):
        try:
            tindex = tantivy.Index.open(str(p / "tantivy"))
        except (ValueError, OSError) as exc:
            raise IndexCorruptError(
                str(p / "tantivy"), f"the BM25 store cannot be opened ({exc})", "Rebuild the index from its corpus"
            ) from None
        tindex.register_tokenizer(ANALYZER_NAME, build_analyzer(cfg.analyzer))
        tw = tindex.writer(heap_size=50_000_000, num_threads=1)
        con = connect(p, write=True)
        try:
            meta = ensure_schema(con, p, dims)
            vec = p / meta["vector_file"]
            if not vec.exists():
                vec.touch()
            proven = vector_file_rows(vec, dims)
            rows = con.execute("SELECT doc_id, row_start, row_count FROM docs").fetchall()
            counts = Counter(tantivy_ids(tindex))
            drop = sorted(d for d, start, n in rows if start + n > proven or counts.get(d, 0) != 1)
            report.dropped = drop
            known = {d for d, *_ in rows}
            bm25_only = sorted(d for d in counts if d not in known)
            for doc_id in [*bm25_only, *drop]:
                tw.delete_documents_by_term("id", doc_id)
            report.bm25_deleted = len(bm25_only) + sum(counts.get(d, 0) for d in drop)
            tw.commit()
            dropped = set(drop)
            kept_end = max((s + n for d, s, n in rows if d not in dropped), default=0)
            committed = max(kept_end, min(proven, int(meta["vector_rows"])))
            report.truncated_rows = max(0, vec.stat().st_size // (4 * dims) - committed)
            con.execute("BEGIN IMMEDIATE")
            con.executemany("DELETE FROM docs WHERE doc_id = ?", [(d,) for d in drop])
            con.execute("DELETE FROM translog")
            seq = int(meta["commit_seq"]) + 1
            for key, value in (("vector_rows", committed), ("commit_seq", seq), ("tantivy_seq", seq)):
                con.execute("UPDATE meta SET value = ? WHERE key = ?", (str(value), key))
            con.execute("COMMIT")
            os.truncate(vec, committed * 4 * dims)
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(str(p / DOCS_FILE), f"cannot be repaired ({exc})", "Rebuild the index") from None
        finally:
            con.close()
            del tw
    idx = EmbeddedIndex(p)  # reopens through the normal checks: the repaired index must pass them
    if idx.recovery is not None:
        report.recovery = idx.recovery.to_dict()
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def compact_index(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Rewrite the vector file of the index at ``path`` without dead rows (readers keep working); returns the rows
    and bytes before and after and the time it took.

    Raises:
        IndexLockedError: a writer holds the index.
    """
    t0 = time.perf_counter()
    idx = EmbeddedIndex(path)
    with idx.writer(auto_compact=None) as w:
        out = w.compact()
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def build_ann(path: str | os.PathLike[str], settings: AnnSettings | None = None) -> dict[str, Any]:
    """Build (or bring up to date) the ANN graph of the index at ``path`` and record it in ``es_biomed.json``;
    settings other than the graph's build settings rebuild it. Returns what the save recorded and the time.

    Raises:
        IndexLockedError: a writer holds the index.
        MissingDependencyError: usearch is not installed.
    """
    t0 = time.perf_counter()
    idx = EmbeddedIndex(p := Path(path), vector_search="exact")
    if settings is None and idx.config.ann is None:
        settings = AnnSettings()
    with idx.writer(auto_compact=None, ann="on", ann_settings=settings) as w:
        out = w.save_ann() or {}
    out = dict(out)
    out["seconds_total"] = round(time.perf_counter() - t0, 3)
    out["index"] = str(p)
    return out


def drop_ann_index(path: str | os.PathLike[str]) -> int:
    """Stop keeping an ANN graph for the index at ``path`` (dense search is exact); returns the files removed."""
    p = Path(path)
    with write_lock(p):
        cfg = EmbeddedIndex.read_config(p)
        if cfg is None:
            raise EsBiomedError(f"no es-biomed index at {p} (missing {META_FILE})")
        if cfg.ann is not None:
            replace_config(cfg, ann=None).write(p)
        return drop_ann(p)
