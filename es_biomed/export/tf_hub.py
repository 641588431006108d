"""Export a Keras BERT as a TF-Hub-style SavedModel that :class:`~es_biomed.encode.tf_backend.TFEncoder` loads.

Layout of the output directory (the TF-Hub BERT encoder convention)::

    out_dir/
        saved_model.pb
        variables/
        assets/vocab.txt                  WordPiece vocabulary
        assets/es_biomed_encoder.json     {"pooling": ..., "max_length": ..., "do_lower_case": ...}

Calling convention (``obj(inputs)`` and the ``serving_default`` signature alike): int32 ``[batch, seq]`` tensors
``input_word_ids``, ``input_mask`` and ``input_type_ids`` in; a dict with ``sequence_output``
``[batch, seq, hidden]`` and ``pooled_output`` ``[batch, hidden]`` out. Like TF-Hub BERT encoders, the loaded
object also carries ``vocab_file`` (an asset) and ``do_lower_case`` (a boolean variable).

Example:
    >>> from es_biomed.train.tf import export_hub_module, load_bert
    >>> model, tokenizer = load_bert("all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> export_hub_module(model, tokenizer, "/models/minilm-tf")  # doctest: +SKIP
    PosixPath('/models/minilm-tf')
    >>> from es_biomed.encode import load_encoder
    >>> load_encoder("/models/minilm-tf").encode(["p53"]).shape  # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from es_biomed.encode.base import Pooling
from es_biomed.errors import EsBiomedError, require
from es_biomed.train.tf.bert import POOLING_CONFIG_KEY

__all__ = ["ENCODER_CONFIG_FILENAME", "export_hub_module", "encoder_settings"]

#: Name of the settings file written next to the vocabulary in ``assets/``.
ENCODER_CONFIG_FILENAME = "es_biomed_encoder.json"

_POOLINGS = ("mean", "cls", "max")
#: ``model_max_length`` transformers uses when a tokenizer has no limit.
_UNBOUNDED = 10**9


def encoder_settings(
    model: Any, tokenizer: Any, *, pooling: Pooling | None = None, max_length: int | None = None
) -> dict[str, Any]:
    """The ``es_biomed_encoder.json`` settings for a model: explicit arguments first, then what it carries.

    Args:
        model: Keras BERT from :func:`~es_biomed.train.tf.bert.load_bert`.
        tokenizer: Its ``BertTokenizerFast``.
        pooling: Defaults to ``model.config.es_biomed_pooling`` (set by ``load_bert``), else ``"mean"``.
        max_length: Defaults to ``tokenizer.model_max_length``, else ``max_position_embeddings``.

    Raises:
        ValueError: ``pooling`` or ``max_length`` is invalid.
    """
    pooling = pooling or getattr(model.config, POOLING_CONFIG_KEY, None) or "mean"
    if pooling not in _POOLINGS:
        raise ValueError(f"pooling must be one of {_POOLINGS}, got {pooling!r}")
    tok_max = int(getattr(tokenizer, "model_max_length", 0) or 0)
    length = int(max_length or (tok_max if 0 < tok_max < _UNBOUNDED else 0) or model.config.max_position_embeddings)
    if length < 2:
        raise ValueError(f"max_length must be at least 2 (room for [CLS] and [SEP]), got {length}")
    if length > model.config.max_position_embeddings:
        raise ValueError(
            f"max_length {length} exceeds the model's max_position_embeddings ({model.config.max_position_embeddings})"
        )
    normalizer = json.loads(tokenizer.backend_tokenizer.normalizer.__getstate__())
    settings: dict[str, Any] = {
        "pooling": pooling,
        "max_length": length,
        "do_lower_case": bool(normalizer.get("lowercase", True)),
    }
    if normalizer.get("strip_accents") is not None:
        settings["strip_accents"] = bool(normalizer["strip_accents"])
    return settings


def export_hub_module(
    model: Any,
    tokenizer: Any,
    out_dir: str | os.PathLike[str],
    *,
    pooling: Pooling | None = None,
    max_length: int | None = None,
) -> Path:
    """Write a Keras BERT and its tokenizer as a TF-Hub-style BERT encoder SavedModel.

    Args:
        model: ``TFBertModel`` or ``TFBertForMaskedLM`` (as returned by :func:`~es_biomed.train.tf.bert.load_bert`).
            Only the encoder is exported; a masked-LM model has no pooler, so its ``pooled_output`` is the
            ``[CLS]`` token's ``sequence_output``.
        tokenizer: Its ``BertTokenizerFast``; supplies ``vocab.txt`` and the lower-casing setting.
        out_dir: Where to write the SavedModel; must not exist or be empty.
        pooling: Pooling recorded for :class:`~es_biomed.encode.tf_backend.TFEncoder` (see :func:`encoder_settings`).
        max_length: Token limit recorded for the encoder (see :func:`encoder_settings`).

    Returns:
        The SavedModel directory.

    Raises:
        EsBiomedError: ``out_dir`` is not empty.
        ValueError: ``pooling`` or ``max_length`` is invalid.
    """
    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EsBiomedError(f"{out} exists and is not an empty directory; choose a new output directory")
    settings = encoder_settings(model, tokenizer, pooling=pooling, max_length=max_length)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf: Any = require("tensorflow", "tf")
    with tempfile.TemporaryDirectory(prefix="es_biomed_export_") as tmp:
        (vocab_file,) = tokenizer.save_vocabulary(tmp)
        cfg_file = Path(tmp) / ENCODER_CONFIG_FILENAME
        cfg_file.write_text(json.dumps(settings, indent=2) + "\n")
        module = _make_encoder_module(
            tf, model.bert, vocab_file=Path(vocab_file), do_lower_case=settings["do_lower_case"]
        )
        # Tracked as an asset, so TensorFlow copies it into out/assets/ and it survives re-saving.
        module.encoder_config_file = tf.saved_model.Asset(str(cfg_file))
        tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})
    return out


def _make_encoder_module(tf: Any, bert: Any, *, vocab_file: Path, do_lower_case: bool) -> Any:
    """Wrap a ``TFBertMainLayer`` in a ``tf.Module`` with the TF-Hub BERT encoder interface.

    Built in a function so the ``tf.Module`` subclass is defined only once TensorFlow is imported.
    """
    spec = tf.TensorSpec([None, None], tf.int32)

    class BertEncoderModule(tf.Module):
        """TF-Hub-style BERT encoder around a ``transformers`` Keras BERT.

        Attributes:
            bert_variables: The encoder's weights; what the SavedModel checkpoint holds.
            vocab_file: WordPiece vocabulary asset.
            do_lower_case: Whether inputs must be lower-cased before word-piece tokenization.
        """

        def __init__(self) -> None:
            super().__init__(name="bert_encoder")
            # Keep the Keras layer out of TensorFlow's object graph: tracked, it makes tf.saved_model.save
            # trace every Keras layer (about 3x slower to save and 5x slower to load, a 5x larger graph).
            # Its weights are saved through `bert_variables`, which the traced functions capture.
            object.__setattr__(self, "_bert", bert)
            self.bert_variables = list(bert.variables)
            self.vocab_file = tf.saved_model.Asset(str(vocab_file))
            self.do_lower_case = tf.Variable(do_lower_case, trainable=False, name="do_lower_case")

        @tf.function(input_signature=[{"input_word_ids": spec, "input_mask": spec, "input_type_ids": spec}])
        def __call__(self, inputs: dict[str, Any]) -> dict[str, Any]:
            out = self._bert(
                input_ids=inputs["input_word_ids"],
                attention_mask=inputs["input_mask"],
                token_type_ids=inputs["input_type_ids"],
                training=False,
            )
            sequence = out.last_hidden_state
            pooled = out.pooler_output if out.pooler_output is not None else sequence[:, 0]
            return {"sequence_output": sequence, "pooled_output": pooled}

        @tf.function(input_signature=[spec, spec, spec])
        def serve(self, input_word_ids: Any, input_mask: Any, input_type_ids: Any) -> dict[str, Any]:
            # Signatures take flat keyword tensors, so serving_default cannot be the dict-input __call__.
            return self.__call__(
                {"input_word_ids": input_word_ids, "input_mask": input_mask, "input_type_ids": input_type_ids}
            )

    return BertEncoderModule()
