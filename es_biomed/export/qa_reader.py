"""Turn a trained Keras span-extraction model into the Hugging Face ``BertForQuestionAnswering`` directory that
the reader loads (build time only: needs TensorFlow, torch and transformers).

The directory (e.g. ``es_biomed/models/weights/biomed-qa``) holds ``config.json`` (``architectures:
["BertForQuestionAnswering"]``), ``model.safetensors`` (weights stored in ``dtype``, float16 to ship; transformers
loads them back as float32), the tokenizer files (``tokenizer.json``, ``vocab.txt``...) and ``qa_config.json``: the
windowing the model was trained with (:class:`~es_biomed.qa.reader.ReaderConfig`). The BERT body goes through
transformers' TF -> PyTorch weight loader (as :func:`~es_biomed.train.tf.retrieval.export_sentence_transformers`
does); the Keras head's ``Dense`` kernel ``[hidden, 2]`` becomes ``qa_outputs.weight`` ``[2, hidden]``.

Example:
    >>> export_span_model(model, tokenizer, "es_biomed/models/weights/biomed-qa")  # doctest: +SKIP
    PosixPath('es_biomed/models/weights/biomed-qa')
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.errors import EsBiomedError, require
from es_biomed.qa.config import QA_CONFIG_FILENAME, ReaderConfig

__all__ = ["export_span_model", "span_logits_max_abs_diff"]


def export_span_model(
    model: Any,
    tokenizer: Any,
    out_dir: str | os.PathLike[str],
    config: ReaderConfig | None = None,
    dtype: str = "float16",
) -> Path:
    """Write a Keras span model (:func:`~es_biomed.train.tf.heads.build_head` ``"span"``) as a torch QA directory.

    Args:
        model: The trained Keras model (``model.bert`` a ``TFBertModel``, ``model.head`` its ``Dense(2)``).
        tokenizer: Its ``BertTokenizerFast``.
        out_dir: Output directory; must not hold a model already.
        config: The windowing the model was trained with, written to ``qa_config.json``.
        dtype: ``"float16"`` (to ship) or ``"float32"``.

    Returns:
        ``out_dir``.

    Raises:
        EsBiomedError: ``out_dir`` already holds a model, ``dtype`` is not supported, or the weights do not map
            onto ``BertForQuestionAnswering``.
    """
    if dtype not in ("float16", "float32"):
        raise EsBiomedError(f"dtype must be float16 or float32, got {dtype!r}")
    if getattr(model, "kind", None) != "span":
        raise EsBiomedError(f"export_span_model needs a span head, got {getattr(model, 'kind', type(model))!r}")
    out = Path(out_dir)
    if (out / "config.json").exists():
        raise EsBiomedError(f"{out} already holds a model (config.json); choose a new output directory")
    torch = require("torch", "torch")
    transformers = require("transformers", "torch")
    from transformers.modeling_tf_pytorch_utils import load_tf2_checkpoint_in_pytorch_model

    from es_biomed.train.tf.bert import save_bert

    with tempfile.TemporaryDirectory() as tmp:
        tf_dir = save_bert(model.bert, tokenizer, Path(tmp) / "tf")
        bert_config = transformers.BertConfig.from_pretrained(str(tf_dir), local_files_only=True)
        body = transformers.BertModel(bert_config)
        body, info = load_tf2_checkpoint_in_pytorch_model(body, str(tf_dir / "tf_model.h5"), output_loading_info=True)
        missing = [k for k in info["missing_keys"] if not k.endswith("position_ids")]
        if missing or info.get("unexpected_keys"):
            raise EsBiomedError(
                f"TensorFlow weights do not match BertModel (missing {missing}, unexpected {info.get('unexpected_keys')})"
            )
        bert_config.architectures = ["BertForQuestionAnswering"]
        qa = transformers.BertForQuestionAnswering(bert_config)
        state = {k: v for k, v in body.state_dict().items() if not k.startswith("pooler.")}
        result = qa.bert.load_state_dict(state, strict=False)
        if [k for k in result.missing_keys if not k.endswith("position_ids")] or result.unexpected_keys:
            raise EsBiomedError(f"BERT body does not fit BertForQuestionAnswering: {result}")
        kernel, bias = (np.asarray(w.numpy()) for w in model.head.weights)
        with torch.no_grad():
            qa.qa_outputs.weight.copy_(torch.from_numpy(kernel.T.copy()))
            qa.qa_outputs.bias.copy_(torch.from_numpy(bias.copy()))
        qa = qa.eval().to(getattr(torch, dtype))
        out.mkdir(parents=True, exist_ok=True)
        qa.save_pretrained(str(out), safe_serialization=True)
        tok = transformers.BertTokenizerFast.from_pretrained(str(tf_dir), local_files_only=True)
        tok.save_pretrained(str(out))
    cfg = config or ReaderConfig()
    (out / QA_CONFIG_FILENAME).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    return out


def span_logits_max_abs_diff(model: Any, model_dir: str | os.PathLike[str], texts: Sequence[tuple[str, str]]) -> float:
    """Largest absolute difference of start/end logits between the Keras span model and a torch QA directory
    (loaded as float32), over ``(question, context)`` pairs encoded with the Keras model's own windowing."""
    tf = require("tensorflow", "tf")
    torch = require("torch", "torch")
    transformers = require("transformers", "torch")
    tok = transformers.BertTokenizerFast.from_pretrained(str(model_dir), local_files_only=True)
    ref = transformers.BertForQuestionAnswering.from_pretrained(
        str(model_dir), local_files_only=True, dtype=torch.float32
    ).eval()
    enc = tok(
        [q for q, _ in texts],
        [c for _, c in texts],
        padding=True,
        truncation="only_second",
        max_length=256,
        return_tensors="np",
    )
    feats = {k: tf.constant(enc[k], tf.int32) for k in ("input_ids", "attention_mask", "token_type_ids")}
    mine = model(feats, training=False).numpy()
    with torch.inference_mode():
        got = ref(**{k: torch.from_numpy(enc[k].astype(np.int64)) for k in feats})
    theirs = np.stack([got.start_logits.numpy(), got.end_logits.numpy()], axis=-1)
    mask = enc["attention_mask"].astype(bool)
    return float(np.abs(mine - theirs)[mask].max())
