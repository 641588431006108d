"""Checks on a Hugging Face / sentence-transformers model directory before anything loads it."""

from __future__ import annotations

import os
from pathlib import Path

from es_biomed.errors import EsBiomedError

__all__ = ["WEIGHT_FILES", "TOKENIZER_FILES", "check_model_dir", "resolve_model_dir"]

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


def check_model_dir(path: str | os.PathLike[str], what: str = "model") -> Path:
    """``path`` if it holds ``config.json``, weights and tokenizer files.

    Raises:
        EsBiomedError: naming the directory and every missing file (for weights and tokenizer: the accepted
            alternatives).
    """
    p = Path(path)
    if not p.is_dir():
        raise EsBiomedError(f"{what} directory {p} does not exist")
    missing = []
    if not (p / "config.json").is_file():
        missing.append("config.json")
    if not any((p / f).is_file() for f in WEIGHT_FILES):
        missing.append("weights (" + " or ".join(WEIGHT_FILES) + ")")
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        missing.append("tokenizer files (" + " or ".join(TOKENIZER_FILES) + ")")
    if missing:
        raise EsBiomedError(f"{what} directory {p} is missing " + ", ".join(missing))
    return p


def resolve_model_dir(name_or_path: str, what: str = "model") -> Path:
    """A registered model's directory (:func:`~es_biomed.encode.registry.resolve_model_path`) or a checked path."""
    from es_biomed.encode.registry import _registry, resolve_model_path

    if name_or_path in _registry():
        return check_model_dir(resolve_model_path(name_or_path), f"{what} {name_or_path!r}")
    return check_model_dir(name_or_path, what)
