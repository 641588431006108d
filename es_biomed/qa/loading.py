"""Resolve ``reader=NAME|PATH`` to a :class:`~es_biomed.qa.reader.SpanReader`.

Named readers are the model catalog's entries of kind ``reader`` (:mod:`es_biomed.models.catalog`; the shipped
``biomed-qa`` lives in ``es_biomed/models/weights/biomed-qa``). Anything else is taken as a model directory (``config.json``, ``model.safetensors``,
``tokenizer.json``; e.g. what ``training/finetune_qa.py --save-dir`` writes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from es_biomed.models.catalog import known, lookup, resolve
from es_biomed.qa.errors import ModelFilesError, QaParameterError
from es_biomed.qa.reader import Runtime, SpanReader

__all__ = ["DEFAULT_READER", "known_readers", "load_reader", "resolve_reader_path"]

DEFAULT_READER = "biomed-qa"


def known_readers() -> list[str]:
    """Canonical names of the registered QA readers."""
    return known("reader")


def resolve_reader_path(name_or_path: str | os.PathLike[str]) -> tuple[str, Path]:
    """``(name, directory)`` of a registered reader or a reader directory.

    Raises:
        QaParameterError: ``name_or_path`` is neither a registered name nor a directory (``param="reader"``).
        ModelFilesError: a registered reader's files are missing (package data not installed).
    """
    key = str(name_or_path)
    spec = lookup(key, "reader")
    if spec is not None:
        return spec["name"], resolve(key, "reader", files=("config.json", "model.safetensors"), error=ModelFilesError)
    path = Path(key).expanduser()
    if not path.is_dir():
        raise QaParameterError(
            "reader",
            f"unknown QA reader {key!r}: not a registered name ({', '.join(known_readers())}) and not a model directory",
        )
    return str(path), path


def load_reader(
    name_or_path: str | os.PathLike[str] = DEFAULT_READER, runtime: Runtime = "auto", **kwargs: Any
) -> SpanReader:
    """Load a QA reader by registered name (default ``biomed-qa``) or directory.

    Args:
        name_or_path: A name from ``es_biomed/models/models.json`` or a model directory.
        runtime: ``"auto"`` (ONNX Runtime when installed, exporting on first use; else torch), ``"onnx"`` or
            ``"torch"``.
        **kwargs: Passed to :class:`~es_biomed.qa.reader.SpanReader` (``threads``, ``batch_size``).

    Raises:
        QaParameterError: unknown name (``param="reader"``).
        ModelFilesError: the model's files are missing.
        MissingDependencyError: the runtime's packages are not installed.

    Example:
        >>> load_reader("biomed-qa").runtime  # doctest: +SKIP
        'onnx'
    """
    name, path = resolve_reader_path(name_or_path)
    return SpanReader(path, name=name, runtime=runtime, **kwargs)
