"""Where es-biomed keeps what it makes or downloads once: fetched models, ONNX builds, fingerprints.

``$XDG_CACHE_HOME/es-biomed`` (default ``~/.cache/es-biomed``) holds ``models/`` (models fetched from PyPI parts,
:mod:`es_biomed.models.fetch`) and ``onnx/`` (the ONNX builds of encoders and QA readers, ``$ES_BIOMED_ONNX_DIR``
overrides it). Everything is written by :func:`build_into_cache`, the one "make it on first use" mechanism: a private
temporary directory renamed into place, so two processes never see half of one; :func:`ensure_built` adds the check
that reuses a finished build and the clear error when the build needs a package that is not installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from es_biomed.errors import EsBiomedError, require

__all__ = [
    "FETCH_RECORD",
    "ModelNotFetchedError",
    "build_into_cache",
    "cache_root",
    "cached_model_dir",
    "ensure_built",
    "model_cache_path",
    "models_cache_dir",
    "onnx_cache_dir",
]

#: Written last into a fetched model's directory: its presence means the directory is complete and verified.
FETCH_RECORD = "es_biomed_fetch.json"


class ModelNotFetchedError(FileNotFoundError, EsBiomedError):
    """A registered model downloaded on request (``es-biomed models fetch NAME``) is not in the cache yet."""


def cache_root() -> Path:
    """es-biomed's cache directory: ``$XDG_CACHE_HOME/es-biomed`` (default ``~/.cache/es-biomed``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "es-biomed"


def onnx_cache_dir() -> Path:
    """Root of the exported-model cache: ``$ES_BIOMED_ONNX_DIR``, else ``$XDG_CACHE_HOME/es-biomed/onnx``."""
    if os.environ.get("ES_BIOMED_ONNX_DIR"):
        return Path(os.environ["ES_BIOMED_ONNX_DIR"]).expanduser()
    return cache_root() / "onnx"


def models_cache_dir() -> Path:
    """Root of the fetched-model cache: ``$XDG_CACHE_HOME/es-biomed/models`` (default ``~/.cache/...``)."""
    return cache_root() / "models"


def model_cache_path(name: str) -> Path:
    """Where the fetched model ``name`` lives (whether or not it is there)."""
    return models_cache_dir() / name


def cached_model_dir(name: str) -> Path | None:
    """The fetched model's directory if it is complete (its :data:`FETCH_RECORD` is there), else ``None``."""
    path = model_cache_path(name)
    return path if (path / FETCH_RECORD).is_file() else None


def build_into_cache(target: Path, build: Callable[[Path], object], manifest: str) -> Path:
    """Run ``build`` into a private temporary directory beside ``target`` and rename it into place.

    Two processes building at once each write their own directory; the first rename wins and the loser's copy is
    dropped (``target / manifest`` present means the winner finished). Nothing half-written is ever at ``target``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / manifest).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_built(
    target: Path,
    manifest: str,
    build: Callable[[Path], object],
    what: str,
    needs: tuple[str, ...] = ("torch",),
    extra: str = "torch",
) -> tuple[Path, bool]:
    """``target`` if a finished build is there (its ``manifest`` file present), else build it now, once.

    Args:
        target: The cache directory of this build (named by the source's fingerprint).
        manifest: The file whose presence marks a finished build.
        build: Writes the build into the directory it is given.
        what: Names the model in the error, e.g. ``"encoder 'all-MiniLM-L6-v2'"``.
        needs: The modules the build imports (the first one is named in the error); checked before building,
            never when a build exists.
        extra: The setup.cfg extra that installs them.

    Returns:
        ``(target, built)``: ``built`` is True when this call made it.

    Raises:
        MissingDependencyError: no build exists yet and ``needs`` is not installed.
    """
    if (target / manifest).is_file():
        return target, False
    try:
        for module in needs:
            require(module, extra)
    except ImportError as exc:
        raise type(exc)(
            f"{what} has no ONNX export in {target} yet, and making one needs {needs[0]}: "
            f"pip install 'es-biomed[{extra},onnx]' (once), or set ES_BIOMED_ONNX_DIR to a directory holding exports"
        ) from exc
    return build_into_cache(target, build, manifest), True
