"""A trained Keras retrieval encoder written as the sentence-transformers directory the runtime loads, with its parity against the TF model."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.errors import EsBiomedError, require
from es_biomed.train.tf.retrieval_objective import embed

__all__ = ["export_sentence_transformers", "tf_torch_max_abs_diff"]


_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def export_sentence_transformers(
    tf_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    dtype: str = "float16",
    max_seq_length: int = 256,
) -> Path:
    """Convert a Keras BERT directory (written by :func:`~es_biomed.train.tf.save_bert`) to a PyTorch
    sentence-transformers directory that :func:`es_biomed.encode.load_encoder` loads with the torch backend.

    Writes ``config.json`` and ``model.safetensors`` (weights stored as ``dtype``; ``transformers`` loads them
    back as float32), the tokenizer files, ``modules.json``, ``1_Pooling/config.json`` (mean pooling) and
    ``sentence_bert_config.json``.

    Args:
        tf_dir: Directory with ``config.json``, ``tf_model.h5`` and ``vocab.txt``.
        out_dir: Output directory; must not hold a model already.
        dtype: ``"float16"`` or ``"float32"``.
        max_seq_length: Token limit recorded for the encoder.

    Raises:
        EsBiomedError: ``out_dir`` already holds a model, or ``dtype`` is not supported.
    """
    if dtype not in ("float16", "float32"):
        raise EsBiomedError(f"dtype must be float16 or float32, got {dtype!r}")
    out = Path(out_dir)
    if (out / "config.json").exists():
        raise EsBiomedError(f"{out} already holds a model (config.json); choose a new output directory")
    torch = require("torch", "torch")
    transformers = require("transformers", "torch")
    from transformers.modeling_tf_pytorch_utils import load_tf2_checkpoint_in_pytorch_model

    # BertModel.from_pretrained(..., from_tf=True) leaves meta tensors in transformers 4.57: load the h5 explicitly
    model = transformers.BertModel(transformers.BertConfig.from_pretrained(str(tf_dir), local_files_only=True))
    model, info = load_tf2_checkpoint_in_pytorch_model(
        model, str(Path(tf_dir) / "tf_model.h5"), output_loading_info=True
    )
    missing = [k for k in info["missing_keys"] if not k.endswith("position_ids")]
    if missing or info.get("unexpected_keys"):
        raise EsBiomedError(
            f"{tf_dir}: TensorFlow weights do not match BertModel (missing {missing}, "
            f"unexpected {info.get('unexpected_keys')})"
        )
    model = model.eval().to(getattr(torch, dtype))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tok = transformers.BertTokenizerFast.from_pretrained(str(tf_dir), local_files_only=True)
    tok.model_max_length = max_seq_length
    tok.save_pretrained(str(out))
    for name in _TOKENIZER_FILES:
        if not (out / name).exists() and (Path(tf_dir) / name).exists():
            shutil.copy(Path(tf_dir) / name, out / name)
    hidden = int(model.config.hidden_size)
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": hidden,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            },
            indent=2,
        )
        + "\n"
    )
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}, indent=2) + "\n"
    )
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (out / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    return out


def tf_torch_max_abs_diff(
    tf_model: Any, tokenizer: Any, torch_encoder: Any, texts: Sequence[str], max_length: int
) -> float:
    """Largest absolute difference between the Keras model's normalized embeddings and a torch encoder's.

    Args:
        tf_model: The Keras BERT.
        tokenizer: Its tokenizer.
        torch_encoder: An :class:`~es_biomed.encode.Encoder` (e.g. :class:`~es_biomed.encode.torch_backend.TorchEncoder`).
        texts: Texts to embed with both.
        max_length: Token limit for the Keras side (use the torch encoder's ``max_length``).
    """
    tf = require("tensorflow", "tf")
    worst = 0.0
    ref = torch_encoder.encode(list(texts), batch_size=16)
    for start in range(0, len(texts), 16):
        chunk = list(texts[start : start + 16])
        enc = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        feats = {k: tf.constant(enc[k], tf.int32) for k in ("input_ids", "attention_mask", "token_type_ids")}
        mine = embed(tf_model, feats).numpy()
        worst = max(worst, float(np.abs(mine - ref[start : start + len(chunk)]).max()))
    return worst
