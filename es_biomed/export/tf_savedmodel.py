"""Convert a Hugging Face BERT-family model to a TF-Hub-style TensorFlow SavedModel.

A thin wrapper over the one export path, ``HF dir -> es_biomed.train.tf.load_bert -> export_hub_module``; see
:mod:`es_biomed.export.tf_hub` for the SavedModel layout and calling convention, which
:class:`~es_biomed.encode.tf_backend.TFEncoder` loads exactly as it loads an encoder downloaded from TF-Hub.

Example:
    >>> from es_biomed.export.tf_savedmodel import export_savedmodel
    >>> export_savedmodel("/models/all-MiniLM-L6-v2", "/models/minilm-tf")  # doctest: +SKIP
    PosixPath('/models/minilm-tf')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from es_biomed.encode.base import Pooling
from es_biomed.encode.tf_dlopen import keep_tensorflow_symbols_local
from es_biomed.errors import EsBiomedError

__all__ = ["ENCODER_CONFIG_FILENAME", "SUPPORTED_MODEL_TYPES", "export_savedmodel"]

# Before TensorFlow is first imported: load it RTLD_LOCAL (a later `import triton` would segfault otherwise).
keep_tensorflow_symbols_local()

#: Name of the settings file written next to the vocabulary in ``assets/``.
ENCODER_CONFIG_FILENAME = "es_biomed_encoder.json"

#: Hugging Face ``model_type`` values this exporter converts (WordPiece tokenizer, BERT inputs).
SUPPORTED_MODEL_TYPES = ("bert",)


def export_savedmodel(
    hf_model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    max_length: int | None = None,
    pooling: Pooling | None = None,
) -> Path:
    """Convert a Hugging Face BERT-family model directory to a TF-Hub-style SavedModel.

    The PyTorch weights (safetensors or ``pytorch_model.bin``) are loaded into ``transformers.TFBertModel``
    with ``from_pt=True``; nothing is downloaded.

    Args:
        hf_model_dir: Hugging Face (or sentence-transformers) model directory with ``config.json``,
            weights and ``vocab.txt``.
        out_dir: Where to write the SavedModel; must not exist or be empty.
        max_length: Token limit recorded for the encoder. Defaults to the sentence-transformers
            ``max_seq_length``, else the model's ``max_position_embeddings``.
        pooling: ``"mean"``, ``"cls"`` or ``"max"``. Defaults to the sentence-transformers pooling config,
            else ``"mean"``.

    Returns:
        The SavedModel directory.

    Raises:
        EsBiomedError: ``hf_model_dir`` is not a supported model directory, or ``out_dir`` is not empty.
        MissingDependencyError: TensorFlow, tf-keras or transformers' TensorFlow support is unavailable.
        ValueError: ``pooling`` or ``max_length`` is invalid.
    """
    from es_biomed.export.tf_hub import export_hub_module
    from es_biomed.train.tf.bert import load_bert

    hf_dir = Path(hf_model_dir).expanduser()
    _check_model_dir(hf_dir)
    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EsBiomedError(f"{out} exists and is not an empty directory; choose a new output directory")
    model, tokenizer = load_bert(hf_dir)
    return export_hub_module(model, tokenizer, out, pooling=pooling, max_length=max_length)


def _check_model_dir(hf_dir: Path) -> None:
    """Check ``config.json`` (supported model type) and ``vocab.txt`` before loading any weights."""
    cfg_path = hf_dir / "config.json"
    if not cfg_path.is_file():
        raise EsBiomedError(f"{hf_dir} is not a Hugging Face model directory: no config.json")
    config: dict[str, Any] = json.loads(cfg_path.read_text())
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise EsBiomedError(
            f"{hf_dir}: model_type {model_type!r} is not supported for TensorFlow export "
            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    if not (hf_dir / "vocab.txt").is_file():
        raise EsBiomedError(f"{hf_dir}: no vocab.txt; the TensorFlow encoder needs a WordPiece vocabulary file")
