"""The approximate nearest-neighbour (ANN) index of an embedded index: usearch's HNSW over the vector rows.

Keys are vector row numbers (a document's passages are rows ``row_start .. row_start + row_count``), so the graph
needs no id table of its own; rows left dead by an update are removed from it, and every candidate it returns is
checked against the committed state. Vectors in the graph may be quantised (``i8`` by default, or ``f16`` / ``b1``);
the candidates are then scored again exactly on the float vectors (Elasticsearch's ``rescore_vector``), so the
scores a search returns are always the exact cosines, and only recall depends on the graph.

Files, beside the other stores:

* ``ann.<generation>.usearch``: the graph and its (quantised) vectors, memory-mapped read-only by readers.
* ``ann.json``: the commit point. It names the file, its size, the vector file and the rows it covers, the encoder
  fingerprint and the settings. The writer saves a new generation (file written and fsynced, then ``ann.json``
  replaced atomically, then the old file removed), so a crash leaves the previous generation in force.

The graph may cover fewer rows than are committed (a writer saves it at close and every ``save_interval``
seconds, not at every commit): readers score the rows past it exactly and say so (``lag_rows``). A graph built
over another vector file (a compaction renumbered the rows) is stale: readers search exactly and report why; the
next writer rebuilds it. A graph that the configuration expects but that is missing, unreadable, of another size or
built by another encoder is refused on open with the file and the command that rebuilds it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from es_biomed.backends.embedded.store import fsync_path
from es_biomed.errors import IndexCorruptError, MissingDependencyError, PlanError

__all__ = [
    "ANN_META",
    "EXACT_BELOW_ROWS",
    "AnnSettings",
    "AnnView",
    "AnnWriter",
    "VectorSearch",
    "ann_candidates",
    "drop_ann",
    "open_ann",
    "rebuild_command",
]

logger = logging.getLogger(__name__)

ANN_META = "ann.json"
ANN_FORMAT = 1
#: Below this many live vector rows a dense search is exact unless told otherwise, and ``--ann auto`` builds no
#: graph: an exact scan of 50,000 rows of 384 floats costs about 4 ms on 2 cores (benchmarks/RESULTS.md, "A
#: million documents"), under the 10 ms target with recall 1.0, and an HNSW graph costs build time and memory.
EXACT_BELOW_ROWS = 50_000
#: With a filter that leaves at most this many rows, the filtered rows are scanned exactly (cheaper and exact).
EXACT_FILTERED_ROWS = 20_000
#: A search never asks the graph for more than this many rows; past it, it scans exactly.
MAX_CANDIDATE_ROWS = 50_000

VectorSearch = Literal["auto", "exact", "ann"]
_DTYPES = ("f32", "f16", "i8", "b1")


def rebuild_command(index_path: str | os.PathLike[str]) -> str:
    return f"Rebuild it with `es-biomed ann build {index_path}` (or drop it with `es-biomed ann drop {index_path}`)"


@dataclass(frozen=True)
class AnnSettings:
    """How the graph is built and searched (stored in ``es_biomed.json`` under ``ann``).

    Args:
        dtype: Scalar kind of the vectors inside the graph: ``f32``, ``f16``, ``i8`` (default) or ``b1`` (binary).
        connectivity: HNSW ``M``: neighbours per node.
        expansion_add: HNSW ``ef_construction``.
        expansion_search: HNSW ``ef`` at search time (at least the number of rows asked for).
        oversample: Rows asked of the graph per document wanted; all are scored exactly on float vectors.
    """

    dtype: str = "i8"
    connectivity: int = 16
    expansion_add: int = 128
    #: 256: dense recall@10 against the exact scan 0.9755 at 1M generated documents (96: 0.9315; 160: 0.955),
    #: p50 1.7 ms (benchmarks/RESULTS.md, "A million documents")
    expansion_search: int = 256
    oversample: int = 4

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise PlanError(f"ann dtype must be one of {_DTYPES}, got {self.dtype!r}", param="dtype")
        for name in ("connectivity", "expansion_add", "expansion_search", "oversample"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 4096:
                raise PlanError(f"ann {name} must be an integer in [1, 4096], got {value!r}", param=name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnnSettings:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _usearch() -> Any:
    try:
        from usearch.index import Index
    except ImportError:
        raise MissingDependencyError(
            "the ANN index needs usearch: pip install 'es-biomed[ann]' (or search with --exact)"
        ) from None
    return Index


def _read_meta(path: Path) -> dict[str, Any] | None:
    meta = path / ANN_META
    if not meta.is_file():
        return None
    try:
        d = json.loads(meta.read_text())
        if not isinstance(d, dict) or d.get("format") != ANN_FORMAT:
            raise ValueError(f"format {d.get('format') if isinstance(d, dict) else d!r}")
        return d
    except ValueError as exc:
        raise IndexCorruptError(str(meta), f"not a readable ANN record ({exc})", rebuild_command(path)) from None


@dataclass(frozen=True)
class AnnView:
    """What a reader searches with: the memory-mapped graph (or None) and why it is (not) used."""

    index: Any
    rows: int
    lag_rows: int
    settings: AnnSettings | None
    file: str | None
    reason: str
    lock: threading.Lock

    @property
    def usable(self) -> bool:
        return self.index is not None

    def describe(self, method: str, live_rows: int) -> dict[str, Any]:
        out: dict[str, Any] = {"method": method, "reason": self.reason, "live_rows": live_rows}
        if self.index is not None:
            out["ann"] = {
                "file": self.file,
                "rows": self.rows,
                "lag_rows": self.lag_rows,
                **(self.settings.to_dict() if self.settings else {}),
            }
        return out


def open_ann(
    path: Path, settings: AnnSettings | None, fingerprint: str | None, dims: int, vector_file: str, vector_rows: int
) -> AnnView:
    """The graph of the committed state, memory-mapped; see the module's rules for missing, stale and lagging ones.

    Raises:
        IndexCorruptError: the configuration expects a graph but ``ann.json`` or its file is missing, unreadable,
            of another size, of other dims, or built by another encoder (the file and the command are named).
    """
    lock = threading.Lock()
    if settings is None:
        return AnnView(None, 0, 0, None, None, "no ANN index (es-biomed ann build makes one)", lock)
    meta = _read_meta(path)
    if meta is None:
        raise IndexCorruptError(
            str(path / ANN_META),
            "the configuration expects an ANN index but its record is missing",
            rebuild_command(path),
        )
    file = path / str(meta.get("file", ""))
    if not file.is_file():
        raise IndexCorruptError(str(file), "the ANN index file is missing", rebuild_command(path))
    if fingerprint is not None and meta.get("encoder_fingerprint") != fingerprint:
        raise IndexCorruptError(
            str(file),
            f"the ANN index was built from vectors of encoder fingerprint {meta.get('encoder_fingerprint')}, "
            f"the index holds {fingerprint}",
            rebuild_command(path),
        )
    if int(meta.get("dims", -1)) != dims:
        raise IndexCorruptError(str(file), f"ANN dims {meta.get('dims')} != index dims {dims}", rebuild_command(path))
    size = file.stat().st_size
    if size != int(meta.get("bytes", -1)):
        raise IndexCorruptError(
            str(file),
            f"holds {size} bytes but {ANN_META} records {meta.get('bytes')} (truncated or replaced)",
            rebuild_command(path),
        )
    stored = AnnSettings.from_dict(meta.get("settings", {}))
    live_settings = AnnSettings(
        **{**stored.to_dict(), "expansion_search": settings.expansion_search, "oversample": settings.oversample}
    )
    if meta.get("vector_file") != vector_file or int(meta.get("rows", 0)) > vector_rows:
        reason = (
            f"ANN index {file.name} covers {meta.get('vector_file')} ({meta.get('rows')} rows) but the index now "
            f"keeps {vector_rows} rows in {vector_file} (a compaction renumbered them): exact until the next writer "
            "rebuilds it"
        )
        return AnnView(None, 0, 0, live_settings, file.name, reason, lock)
    Index = _usearch()
    try:
        idx = Index.restore(str(file), view=True)
    except (ValueError, RuntimeError) as exc:
        raise IndexCorruptError(str(file), f"the ANN index cannot be read ({exc})", rebuild_command(path)) from None
    if idx is None or idx.ndim != dims:
        raise IndexCorruptError(str(file), "not an ANN index of these dims", rebuild_command(path))
    idx.expansion_search = settings.expansion_search
    rows = int(meta["rows"])
    lag = vector_rows - rows
    reason = "ANN graph" + (f"; the last {lag} rows (not yet in the graph) scanned exactly" if lag else "")
    return AnnView(idx, rows, lag, live_settings, file.name, reason, lock)


def ann_candidates(
    ann: AnnView,
    vectors: np.ndarray,
    row_live: np.ndarray,
    row_doc: np.ndarray,
    query: np.ndarray,
    n: int,
    mask: np.ndarray | None,
) -> np.ndarray | None:
    """Documents (their positions) whose rows the graph finds nearest to ``query``, plus every document with a
    row past the graph; None where an exact scan is the better plan (a selective filter, or more rows wanted than
    :data:`MAX_CANDIDATE_ROWS`). The caller scores the candidates exactly."""
    assert ann.index is not None and ann.settings is not None
    share = 1.0 if mask is None else float(mask.mean()) if len(mask) else 0.0
    filtered_rows = share * ann.rows
    if mask is not None and filtered_rows <= EXACT_FILTERED_ROWS:
        return None
    count = int(n * ann.settings.oversample / max(share, 1e-9))
    if count > MAX_CANDIDATE_ROWS:
        return None
    count = max(count, n)
    tail = np.arange(ann.rows, len(row_live))
    tail_docs = np.unique(row_doc[tail[row_live[tail]]]) if len(tail) else np.zeros(0, dtype=np.int64)
    q = _as_graph_input(np.asarray(query, dtype=np.float32)[None, :], ann.settings.dtype)[0]
    while True:
        with ann.lock:
            keys = np.asarray(ann.index.search(q, count).keys, dtype=np.int64)
        keys = keys[(keys >= 0) & (keys < len(row_live))]
        keys = keys[row_live[keys]]
        docs = np.unique(row_doc[keys])
        if mask is not None:
            docs = docs[mask[docs]]
        if len(docs) >= n or len(keys) < count or count >= MAX_CANDIDATE_ROWS:
            break
        count = min(count * 4, MAX_CANDIDATE_ROWS)
    if len(tail_docs):
        if mask is not None:
            tail_docs = tail_docs[mask[tail_docs]]
        docs = np.union1d(docs, tail_docs)
    return docs


class AnnWriter:
    """The writer's side: loads the graph of the last generation (or starts a new one), adds the committed rows
    past it, removes dead ones, and saves a new generation atomically."""

    def __init__(self, path: Path, settings: AnnSettings, fingerprint: str, dims: int, vector_file: str) -> None:
        self.path = path
        self.settings = settings
        self.fingerprint = fingerprint
        self.dims = dims
        self.vector_file = vector_file
        self.generation = 0
        self.rows = 0
        self.dirty = False
        self.last_save = time.monotonic()
        self._Index = _usearch()
        meta = None
        try:
            meta = _read_meta(path)
        except IndexCorruptError as exc:
            logger.warning("index %s: %s; rebuilding the ANN index", path, exc)
        self.index = None
        if meta is not None:
            self.generation = int(meta.get("generation", 0))
            same = (
                meta.get("vector_file") == vector_file
                and meta.get("encoder_fingerprint") == fingerprint
                and int(meta.get("dims", -1)) == dims
                and _build_keys(AnnSettings.from_dict(meta.get("settings", {}))) == _build_keys(settings)
            )
            file = path / str(meta.get("file", ""))
            if same and file.is_file() and file.stat().st_size == int(meta.get("bytes", -1)):
                try:
                    self.index = self._Index.restore(str(file), view=False)
                    self.rows = int(meta["rows"])
                except (ValueError, RuntimeError) as exc:
                    logger.warning("index %s: ANN index %s unreadable (%s); rebuilding it", path, file, exc)
            else:
                logger.info("index %s: ANN index %s is stale or damaged; rebuilding it", path, file.name)
        if self.index is None:
            self.reset(vector_file)
        self._remove_orphans(meta)

    def reset(self, vector_file: str) -> None:
        """Start an empty graph over ``vector_file`` (after a compaction renumbered the rows)."""
        s = self.settings
        self.index = self._Index(
            ndim=self.dims,
            metric="hamming" if s.dtype == "b1" else "cos",
            dtype=s.dtype,
            connectivity=s.connectivity,
            expansion_add=s.expansion_add,
            expansion_search=s.expansion_search,
        )
        self.vector_file = vector_file
        self.rows = 0
        self.dirty = True

    def _remove_orphans(self, meta: dict[str, Any] | None) -> None:
        keep = meta.get("file") if meta else None
        for f in self.path.glob("ann.*.usearch*"):
            if f.name != keep:
                f.unlink(missing_ok=True)
        (self.path / (ANN_META + ".tmp")).unlink(missing_ok=True)

    def sync(self, vectors: np.ndarray, row_live: np.ndarray, batch: int = 65_536) -> int:
        """Add the live rows past the graph and remove the rows that died; returns the rows added."""
        assert self.index is not None
        total = len(row_live)
        added = 0
        for start in range(self.rows, total, batch):
            stop = min(start + batch, total)
            rows = np.arange(start, stop)[row_live[start:stop]]
            if len(rows):
                self.index.add(rows.astype(np.uint64), _as_graph_input(vectors[rows], self.settings.dtype), threads=0)
                added += len(rows)
        dead = np.flatnonzero(~row_live[: self.rows]).astype(np.uint64)
        if len(dead):
            present = dead[np.asarray(self.index.contains(dead), dtype=bool)]
            if len(present):
                self.index.remove(present)
        if total != self.rows or len(dead):
            self.dirty = True
        self.rows = total
        return added

    def save(self) -> dict[str, Any]:
        """Write a new generation and make it the current one (atomic; the old file is removed after)."""
        assert self.index is not None
        t0 = time.perf_counter()
        gen = self.generation + 1
        name = f"ann.{gen}.usearch"
        tmp = self.path / (name + ".tmp")
        self.index.save(str(tmp))
        fsync_path(tmp)
        tmp.replace(self.path / name)
        fsync_path(self.path)
        meta = {
            "format": ANN_FORMAT,
            "generation": gen,
            "file": name,
            "bytes": (self.path / name).stat().st_size,
            "rows": self.rows,
            "vector_file": self.vector_file,
            "encoder_fingerprint": self.fingerprint,
            "dims": self.dims,
            "settings": self.settings.to_dict(),
            "usearch": _usearch_version(),
        }
        mtmp = self.path / (ANN_META + ".tmp")
        mtmp.write_text(json.dumps(meta, indent=2))
        fsync_path(mtmp)
        mtmp.replace(self.path / ANN_META)  # the commit point
        fsync_path(self.path)
        old = self.path / f"ann.{self.generation}.usearch"
        if self.generation and old.name != name:
            old.unlink(missing_ok=True)
        self.generation = gen
        self.dirty = False
        self.last_save = time.monotonic()
        meta["seconds"] = round(time.perf_counter() - t0, 3)
        return meta


def _as_graph_input(vectors: np.ndarray, dtype: str) -> np.ndarray:
    """What the graph takes: float rows (usearch quantises them), or for ``b1`` the sign bits packed in bytes
    (compared by Hamming distance, as Elasticsearch's ``bbq`` first pass does before its float rescore)."""
    if dtype == "b1":
        return np.packbits(vectors > 0, axis=1)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _build_keys(s: AnnSettings) -> tuple[str, int, int]:
    """The settings a graph is built with (the others apply at search time)."""
    return (s.dtype, s.connectivity, s.expansion_add)


def drop_ann(path: Path) -> int:
    """Remove the graph's files (the caller holds the write lock and has cleared the configuration)."""
    n = 0
    for f in [path / ANN_META, *path.glob("ann.*.usearch*")]:
        if f.exists():
            f.unlink()
            n += 1
    return n


def _usearch_version() -> str:
    try:
        import usearch

        return str(usearch.__version__)
    except (ImportError, AttributeError):
        return "unknown"
