"""Provenance of trained models: file and split hashes, and the ``training_meta.json`` beside every model."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from es_biomed.errors import EsBiomedError

__all__ = [
    "META_FILENAME",
    "ids_sha256",
    "write_training_meta",
    "read_training_meta",
    "update_training_meta",
]

#: Metadata file written beside every trained model's weights.
META_FILENAME = "training_meta.json"


def ids_sha256(ids: Iterable[str]) -> str:
    """Hex sha256 of the sorted, de-duplicated ids joined by newlines (identifies a split)."""
    return hashlib.sha256("\n".join(sorted(set(ids))).encode("utf-8")).hexdigest()


def write_training_meta(out_dir: str | os.PathLike[str], meta: Mapping[str, Any]) -> Path:
    """Write ``training_meta.json`` (sorted keys, indented) beside the weights in ``out_dir``."""
    path = Path(out_dir) / META_FILENAME
    path.write_text(json.dumps(dict(meta), indent=2, sort_keys=True) + "\n")
    return path


def read_training_meta(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a model directory's ``training_meta.json``.

    Raises:
        EsBiomedError: the file is missing or not JSON.
    """
    path = Path(model_dir) / META_FILENAME
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise EsBiomedError(f"{path}: no training metadata (not a model written by es-biomed training)") from None
    except json.JSONDecodeError as exc:
        raise EsBiomedError(f"{path}: line {exc.lineno}: malformed JSON: {exc.msg}") from None


def update_training_meta(model_dir: str | os.PathLike[str], **sections: Any) -> dict[str, Any]:
    """Merge ``sections`` into a model's ``training_meta.json`` (a dict section is merged key by key)."""
    meta = read_training_meta(model_dir)
    for key, value in sections.items():
        if isinstance(value, Mapping) and isinstance(meta.get(key), dict):
            meta[key] = {**meta[key], **value}
        else:
            meta[key] = value
    write_training_meta(model_dir, meta)
    return meta
