"""Convert a Hugging Face BERT-family model to a TF-Hub-style TensorFlow SavedModel.

The SavedModel follows the TF-Hub BERT encoder convention, so :class:`~es_biomed.encode.tf_backend.TFEncoder`
loads it exactly as it loads an encoder downloaded from TF-Hub::

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
    >>> from es_biomed.encode.tf_export import export_savedmodel
    >>> export_savedmodel("/models/all-MiniLM-L6-v2", "/models/minilm-tf")  # doctest: +SKIP
    PosixPath('/models/minilm-tf')
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from es_biomed.encode.base import Pooling, read_pooling_config
from es_biomed.errors import EsBiomedError, MissingDependencyError, require

__all__ = ["ENCODER_CONFIG_FILENAME", "SUPPORTED_MODEL_TYPES", "export_savedmodel"]

#: Name of the settings file written next to the vocabulary in ``assets/``.
ENCODER_CONFIG_FILENAME = "es_biomed_encoder.json"

#: Hugging Face ``model_type`` values this exporter converts (WordPiece tokenizer, BERT inputs).
SUPPORTED_MODEL_TYPES = ("bert",)

_POOLINGS = ("mean", "cls", "max")


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
    hf_dir = Path(hf_model_dir).expanduser()
    out = Path(out_dir).expanduser()
    config = _read_model_config(hf_dir)
    vocab = hf_dir / "vocab.txt"
    if not vocab.is_file():
        raise EsBiomedError(f"{hf_dir}: no vocab.txt; the TensorFlow encoder needs a WordPiece vocabulary file")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EsBiomedError(f"{out} exists and is not an empty directory; choose a new output directory")

    settings = _encoder_settings(hf_dir, config, max_length=max_length, pooling=pooling)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    tf: Any = require("tensorflow", "tf")
    model = _load_tf_bert(hf_dir)

    module = _make_encoder_module(tf, model, vocab_file=vocab, do_lower_case=settings["do_lower_case"])
    with tempfile.TemporaryDirectory(prefix="es_biomed_export_") as tmp:
        cfg_file = Path(tmp) / ENCODER_CONFIG_FILENAME
        cfg_file.write_text(json.dumps(settings, indent=2) + "\n")
        # Tracked as an asset, so TensorFlow copies it into out/assets/ and it survives re-saving.
        module.encoder_config_file = tf.saved_model.Asset(str(cfg_file))
        tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})
    return out


def _read_model_config(hf_dir: Path) -> dict[str, Any]:
    """Read ``config.json`` and check that the model type is supported."""
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
    return config


def _encoder_settings(
    hf_dir: Path, config: dict[str, Any], *, max_length: int | None, pooling: Pooling | None
) -> dict[str, Any]:
    """Settings for ``es_biomed_encoder.json``: explicit arguments, then the model's own configs."""
    cfg_pooling, cfg_max_length = read_pooling_config(hf_dir)
    pooling = pooling or cfg_pooling
    if pooling not in _POOLINGS:
        raise ValueError(f"pooling must be one of {_POOLINGS}, got {pooling!r}")
    length = int(max_length or cfg_max_length or config.get("max_position_embeddings") or 512)
    if length < 2:
        raise ValueError(f"max_length must be at least 2 (room for [CLS] and [SEP]), got {length}")

    tok_cfg_path = hf_dir / "tokenizer_config.json"
    tok_cfg: dict[str, Any] = json.loads(tok_cfg_path.read_text()) if tok_cfg_path.is_file() else {}
    settings: dict[str, Any] = {
        "pooling": pooling,
        "max_length": length,
        # BertTokenizer lower-cases unless told otherwise.
        "do_lower_case": bool(tok_cfg.get("do_lower_case", True)),
    }
    if tok_cfg.get("strip_accents") is not None:
        settings["strip_accents"] = bool(tok_cfg["strip_accents"])
    return settings


def _load_tf_bert(hf_dir: Path) -> Any:
    """Load the checkpoint into ``transformers.TFBertModel`` (weights converted from PyTorch)."""
    transformers: Any = require("transformers", "tf")
    if not transformers.is_tf_available():
        raise MissingDependencyError(
            "transformers has TensorFlow support disabled in this process (USE_TORCH=1 or USE_TF=0 was set "
            "when transformers was first imported); unset them to export TensorFlow models"
        )
    try:
        tf_bert_model = transformers.TFBertModel
    except (ImportError, ValueError, RuntimeError) as exc:
        # transformers' TF classes need Keras 2 (the tf-keras package); under Keras 3 they raise ValueError.
        raise MissingDependencyError(
            f"transformers' TensorFlow models could not be imported ({exc}). "
            "Install them with: pip install 'es-biomed[tf]'"
        ) from exc
    return tf_bert_model.from_pretrained(str(hf_dir), from_pt=True, local_files_only=True)


def _make_encoder_module(tf: Any, model: Any, *, vocab_file: Path, do_lower_case: bool) -> Any:
    """Wrap a ``TFBertModel`` in a ``tf.Module`` with the TF-Hub BERT encoder interface.

    Built in a function so the ``tf.Module`` subclass is defined only once TensorFlow is imported.
    """
    spec = tf.TensorSpec([None, None], tf.int32)

    class BertEncoderModule(tf.Module):
        """TF-Hub-style BERT encoder around a ``transformers`` TF model.

        Attributes:
            bert_variables: The model's weights; what the SavedModel checkpoint holds.
            vocab_file: WordPiece vocabulary asset.
            do_lower_case: Whether inputs must be lower-cased before word-piece tokenization.
        """

        def __init__(self) -> None:
            super().__init__(name="bert_encoder")
            # Keep the Keras model out of TensorFlow's object graph: tracked, it makes tf.saved_model.save
            # trace every Keras layer (about 3x slower to save and 5x slower to load, a 5x larger graph).
            # Its weights are saved through `bert_variables`, which the traced functions capture.
            object.__setattr__(self, "_bert", model)
            self.bert_variables = list(model.variables)
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
            return {"sequence_output": out.last_hidden_state, "pooled_output": out.pooler_output}

        @tf.function(input_signature=[spec, spec, spec])
        def serve(self, input_word_ids: Any, input_mask: Any, input_type_ids: Any) -> dict[str, Any]:
            # Signatures take flat keyword tensors, so serving_default cannot be the dict-input __call__.
            return self.__call__(
                {"input_word_ids": input_word_ids, "input_mask": input_mask, "input_type_ids": input_type_ids}
            )

    return BertEncoderModule()
