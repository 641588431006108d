"""File helpers every room shares: content fingerprints (with their stat-keyed memo), atomic writes, JSON objects."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["fingerprint_files", "fingerprint_cache_path", "read_json_object", "sha256_file", "write_text_atomic"]

log = logging.getLogger(__name__)


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


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
