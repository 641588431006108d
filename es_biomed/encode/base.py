"""Encoder interface shared by the torch and TensorFlow backends.

Subclasses implement :meth:`Encoder._embed_batch` (token ids in, pooled float vectors out); this base
class sorts texts by length so each batch pads little (as sentence-transformers does), restores the
input order and L2-normalizes the rows.
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "Encoder",
    "EncoderInfo",
    "Pooling",
    "mean_pool_np",
    "read_pooling_config",
    "fingerprint_files",
    "fingerprint_cache_path",
    "read_json_object",
    "write_text_atomic",
]

log = logging.getLogger(__name__)

Pooling = Literal["mean", "cls", "max"]


@dataclass(frozen=True)
class EncoderInfo:
    """What an index records about the encoder that built it."""

    name: str
    dims: int
    max_length: int
    pooling: str
    fingerprint: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Encoder(abc.ABC):
    """Text to unit-norm float32 vectors.

    Attributes:
        name: Human-readable name (registry name or path).
        dims: Output dimensionality.
        max_length: Maximum number of word-piece tokens per text (longer texts are truncated).
        pooling: How token vectors become one vector: ``"mean"``, ``"cls"`` or ``"max"``.
    """

    name: str
    dims: int
    max_length: int
    pooling: Pooling
    #: Prefixes some models need (e5: ``"query: "``); MiniLM uses none.
    query_prefix: str = ""
    document_prefix: str = ""

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A stable hash of the weights and settings; two encoders with equal fingerprints embed alike."""

    @property
    def info(self) -> EncoderInfo:
        return EncoderInfo(self.name, self.dims, self.max_length, self.pooling, self.fingerprint)

    @abc.abstractmethod
    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        """Embed one batch; returns ``[len(texts), dims]`` pooled (not yet normalized) vectors."""

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Embed ``texts`` in length-sorted batches.

        Returns:
            float32 array ``[len(texts), dims]`` with L2-normalized rows (zero rows stay zero).
        """
        texts = list(texts)
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batches = range(0, len(texts), batch_size)
        if show_progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="encode", unit="batch")
        for start in batches:
            idx = order[start : start + batch_size]
            out[idx] = self._embed_batch([texts[i] for i in idx])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def encode_queries(self, queries: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self.encode([self.query_prefix + q for q in queries], batch_size, show_progress)

    def encode_documents(self, docs: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self.encode([self.document_prefix + d for d in docs], batch_size, show_progress)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dims={self.dims}, max_length={self.max_length}, pooling={self.pooling!r})"


def mean_pool_np(token_vectors: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked mean over the token axis: ``[b, L, d], [b, L] -> [b, d]``."""
    m = mask[..., None].astype(token_vectors.dtype)
    return (token_vectors * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)


def read_pooling_config(model_dir: Path) -> tuple[Pooling, int | None]:
    """Read pooling mode and max length from a sentence-transformers layout, if present."""
    pooling: Pooling = "mean"
    max_len: int | None = None
    pool_cfg = model_dir / "1_Pooling" / "config.json"
    if pool_cfg.exists():
        cfg = json.loads(pool_cfg.read_text())
        if cfg.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif cfg.get("pooling_mode_max_tokens"):
            pooling = "max"
    st_cfg = model_dir / "sentence_bert_config.json"
    if st_cfg.exists():
        max_len = json.loads(st_cfg.read_text()).get("max_seq_length")
    return pooling, max_len


def fingerprint_files(paths: Sequence[Path], extra: dict[str, object]) -> str:
    """sha256 over the given files' bytes plus a JSON of settings; first 16 hex chars.

    Hashing a 90 MB model costs about 0.1 s, which a one-query process pays once per file; so results are also kept in
    :func:`fingerprint_cache_path`, keyed by each file's path, size, inode and modification time in nanoseconds (what
    git trusts for its index): any rewrite of a file changes its key and the bytes are hashed again.
    """
    files = sorted(paths)
    try:
        stats = [(str(Path(p).resolve()), *_stat_key(p)) for p in files]
    except OSError:
        stats = None  # a missing file: hashing below raises the real error
    key = hashlib.sha256(json.dumps([stats, extra], sort_keys=True).encode()).hexdigest() if stats else None
    memo = _read_fingerprint_cache() if key else {}
    if key and key in memo:
        return memo[key]
    h = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for p in files:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    digest = h.hexdigest()[:16]
    if key:
        _write_fingerprint_cache({**memo, key: digest})
    return digest


def fingerprint_cache_path() -> Path:
    """``$XDG_CACHE_HOME/es-biomed/fingerprints.json`` (default ``~/.cache``); ``$ES_BIOMED_FINGERPRINT_CACHE``
    overrides it, and setting that to an empty string turns the cache off."""
    if "ES_BIOMED_FINGERPRINT_CACHE" in os.environ:
        return Path(os.environ["ES_BIOMED_FINGERPRINT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "es-biomed" / "fingerprints.json"


_FINGERPRINT_CACHE_SIZE = 256


def _stat_key(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_ino, st.st_mtime_ns


def _read_fingerprint_cache() -> dict[str, str]:
    path = fingerprint_cache_path()
    if not str(path) or str(path) == ".":
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # absent or damaged: a cache only, recomputed
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def _write_fingerprint_cache(memo: dict[str, str]) -> None:
    path = fingerprint_cache_path()
    if not str(path) or str(path) == ".":
        return
    entries = list(memo.items())[-_FINGERPRINT_CACHE_SIZE:]  # insertion order: the newest last
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(dict(entries)))  # concurrent writers lose entries, never corrupt it
    except OSError as exc:
        log.debug("fingerprint cache %s not written: %s", path, exc)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename: readers see the old
    content or the new, never part of it. The temporary file is removed if writing fails."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json_object(path: Path, what: str, error: type[Exception]) -> dict[str, object]:
    """The JSON object in ``path`` (``{}`` if the file is absent); ``error`` names the file and ``what`` it holds."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise error(f"{path}: unreadable {what}: {exc}") from exc
    if not isinstance(data, dict):
        raise error(f"{path}: {what} must be a JSON object")
    return data
