"""Checks on a Hugging Face / sentence-transformers model directory before anything loads it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from es_biomed.errors import EsBiomedError
from es_biomed.models.catalog import lookup, resolve

__all__ = [
    "WEIGHT_FILES",
    "TOKENIZER_FILES",
    "missing_model_files",
    "check_model_dir",
    "resolve_model_dir",
    "read_model_config",
    "num_labels",
]

#: Any one of these is the weights (sharded checkpoints have an index file).
WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
#: Any one of these is a tokenizer (WordPiece, BPE or SentencePiece).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


def missing_model_files(path: str | os.PathLike[str]) -> list[str]:
    """What a model directory lacks: ``config.json``, ``weights (...)``, ``tokenizer files (...)``."""
    p = Path(path)
    missing = []
    if not (p / "config.json").is_file():
        missing.append("config.json")
    if not any((p / f).is_file() for f in WEIGHT_FILES):
        missing.append("weights (" + " or ".join(WEIGHT_FILES[:2]) + ")")
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        missing.append("tokenizer files (" + " or ".join(TOKENIZER_FILES[:2]) + ")")
    return missing


def check_model_dir(path: str | os.PathLike[str], what: str = "model", error: type[Exception] = EsBiomedError) -> Path:
    """``path`` if it holds ``config.json``, weights and tokenizer files.

    Raises:
        error: naming the directory and every missing file (for weights and tokenizer: the usual alternatives).
    """
    p = Path(path)
    if not p.is_dir():
        raise error(f"{what} directory {p} does not exist")
    missing = missing_model_files(p)
    if missing:
        raise error(f"{what} directory {p} is missing " + ", ".join(missing))
    return p


def resolve_model_dir(name_or_path: str, what: str = "model") -> Path:
    """A registered encoder's directory (:func:`~es_biomed.models.catalog.resolve`) or a checked path."""
    if lookup(name_or_path, "encoder") is not None:
        return check_model_dir(resolve(name_or_path), f"{what} {name_or_path!r}")
    return check_model_dir(name_or_path, what)


def read_model_config(path: str | os.PathLike[str], error: type[Exception] = EsBiomedError) -> dict[str, Any]:
    """A model directory's ``config.json`` as a dict.

    Raises:
        error: the file is unreadable, not JSON, or not a JSON object (naming the file).
    """
    file = Path(path) / "config.json"
    try:
        config = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise error(f"{file}: unreadable model config: {exc}") from exc
    if not isinstance(config, dict):
        raise error(f"{file}: the model config must be a JSON object")
    return config


def num_labels(config: dict[str, Any]) -> int:
    """Labels of a classification head: transformers stores them as ``id2label`` (its default is 2)."""
    labels = config.get("id2label")
    return len(labels) if isinstance(labels, dict) and labels else int(config.get("num_labels", 2))
