"""The on-disk format of an encoder's ONNX build, shared by the builder (:mod:`es_biomed.encode.onnx_build`) and the
runtime that loads it (:mod:`es_biomed.encode.onnx_backend`): file names and how a variant's identity is computed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from es_biomed.models.files import fingerprint_files

__all__ = ["MANIFEST_FILENAME", "VARIANT_FILES", "variant_fingerprint"]

MANIFEST_FILENAME = "es_biomed_onnx.json"
#: ONNX file of each precision variant.
VARIANT_FILES = {"fp32": "model.onnx", "int8": "model_int8.onnx"}


def variant_fingerprint(onnx_file: Path, tokenizer_file: Path, base: dict[str, Any], variant: str) -> str:
    """Fingerprint of an ONNX file by its own bytes (never equal to a torch encoder's)."""
    return fingerprint_files([onnx_file, tokenizer_file], {**base, "backend": "onnx", "variant": variant})
