"""TensorFlow backend: a TF2 SavedModel / TF-Hub BERT-style encoder directory, loaded offline.

Expected layout (TF-Hub BERT encoders ship it; :func:`es_biomed.export.tf_savedmodel.export_savedmodel` writes it)::

    saved_model.pb
    variables/
    assets/vocab.txt                  WordPiece vocabulary (``vocab.txt`` in the directory root also works)
    assets/es_biomed_encoder.json     optional: {"pooling": "mean", "max_length": 256, "do_lower_case": true}

The model takes int32 ``input_word_ids``, ``input_mask`` and ``input_type_ids`` (``[batch, seq]``) and returns
a dict with ``sequence_output`` (``[batch, seq, hidden]``); pooling happens here, under the input mask.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.encode.base import Encoder, Pooling
from es_biomed.encode.tf_dlopen import keep_tensorflow_symbols_local
from es_biomed.errors import EsBiomedError, require
from es_biomed.models.files import fingerprint_files, read_json_object

__all__ = ["TFEncoder", "ENCODER_CONFIG_FILENAME"]

# Before TensorFlow is first imported: load it RTLD_LOCAL (a later `import triton` would segfault otherwise).
keep_tensorflow_symbols_local()

#: Optional settings file looked up in ``assets/`` (then the directory root).
ENCODER_CONFIG_FILENAME = "es_biomed_encoder.json"

_POOLINGS = ("mean", "cls", "max")
_INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")


class TFEncoder(Encoder):
    """BERT-style encoder from a TensorFlow SavedModel or TF-Hub module directory (CPU by default).

    Settings come from the constructor, else ``assets/es_biomed_encoder.json``, else defaults (mean pooling,
    512 tokens, lower-casing; for lower-casing, a TF-Hub ``do_lower_case`` variable in the model is honoured).

    Args:
        model_dir: SavedModel directory (``saved_model.pb``, ``variables/``, ``assets/vocab.txt``).
        name: Name recorded in indices; defaults to the directory path.
        max_length: Token limit, ``[CLS]`` and ``[SEP]`` included; longer texts are truncated.
        pooling: ``"mean"``, ``"cls"`` (first token of ``sequence_output``) or ``"max"``.
        do_lower_case: Lower-case (and strip accents) before word-piece tokenization.
        device: Optional device: a TensorFlow name (``"/GPU:0"``) or a torch-style one (``"cpu"``, ``"cuda:0"``).

    Raises:
        EsBiomedError: The directory is not a SavedModel, has no ``vocab.txt``, or the model does not follow
            the TF-Hub BERT input/output convention.
        MissingDependencyError: TensorFlow is not installed.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        name: str | None = None,
        max_length: int | None = None,
        pooling: Pooling | None = None,
        do_lower_case: bool | None = None,
        device: str | None = None,
    ) -> None:
        self.model_dir = Path(model_dir).expanduser()
        self.name = name or str(self.model_dir)
        if not (self.model_dir / "saved_model.pb").is_file():
            raise EsBiomedError(f"{self.model_dir} is not a TensorFlow SavedModel directory: no saved_model.pb")
        self.vocab_file = _find_file(self.model_dir, "vocab.txt")
        if self.vocab_file is None:
            raise EsBiomedError(
                f"{self.model_dir}: no vocab.txt in {self.model_dir / 'assets'} or {self.model_dir}; "
                "the TensorFlow encoder needs the model's WordPiece vocabulary"
            )
        cfg = self._read_settings()
        self.pooling = pooling or cfg.get("pooling", "mean")
        if self.pooling not in _POOLINGS:
            raise EsBiomedError(f"{self.model_dir}: pooling must be one of {_POOLINGS}, got {self.pooling!r}")
        self.max_length = int(max_length or cfg.get("max_length") or 512)
        self._strip_accents: bool | None = cfg.get("strip_accents")

        # Quiets TensorFlow's C++ logging only if nobody chose a level and TF is not imported yet.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._tf: Any = require("tensorflow", "tf")
        self._device = _tf_device_name(device)
        with self._device_scope():
            self._model = _load_savedmodel(self._tf, self.model_dir)
            if do_lower_case is None:
                do_lower_case = cfg.get("do_lower_case")
            if do_lower_case is None:
                do_lower_case = _model_do_lower_case(self._model)
            self.do_lower_case = True if do_lower_case is None else bool(do_lower_case)
            self.tokenizer = self._make_tokenizer()
            self._forward = self._make_forward()
            # One tiny batch: checks the output contract, reads the width and traces the forward function.
            try:
                probe = self._embed_batch([""])
            except (KeyError, TypeError, ValueError, self._tf.errors.OpError) as exc:
                raise EsBiomedError(
                    f"{self.model_dir}: calling the model on TF-Hub BERT inputs ({', '.join(_INPUT_NAMES)}) "
                    f"did not return a [batch, seq, hidden] sequence_output: {exc}"
                ) from exc
            if probe.ndim != 2:
                raise EsBiomedError(f"{self.model_dir}: sequence_output is not [batch, seq, hidden]")
            self.dims = int(probe.shape[1])
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            files = [self.model_dir / "saved_model.pb", self.vocab_file]
            files += [p for p in (self.model_dir / "variables").glob("*") if p.is_file()]
            self._fingerprint = fingerprint_files(
                files,
                {
                    "pooling": self.pooling,
                    "max_length": self.max_length,
                    "dims": self.dims,
                    "do_lower_case": self.do_lower_case,
                    "strip_accents": self._strip_accents,
                },
            )
        return self._fingerprint

    def tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Word-piece ids, mask and token types as int32 ``[batch, longest]`` arrays (TF-Hub input names)."""
        encodings = self.tokenizer.encode_batch(texts)
        return {
            "input_word_ids": np.array([e.ids for e in encodings], dtype=np.int32),
            "input_mask": np.array([e.attention_mask for e in encodings], dtype=np.int32),
            "input_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int32),
        }

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        feats = self.tokenize(texts)
        with self._device_scope():
            pooled = self._forward(*(self._tf.constant(feats[k]) for k in _INPUT_NAMES))
        return pooled.numpy()

    # -- loading helpers ---------------------------------------------------------------------------------

    def _read_settings(self) -> dict[str, Any]:
        path = _find_file(self.model_dir, ENCODER_CONFIG_FILENAME)
        return {} if path is None else read_json_object(path, "encoder settings", EsBiomedError)

    def _make_tokenizer(self) -> Any:
        tokenizers: Any = require("tokenizers", "tf")
        try:
            tok = tokenizers.BertWordPieceTokenizer.from_file(
                str(self.vocab_file), lowercase=self.do_lower_case, strip_accents=self._strip_accents
            )
        except Exception as exc:  # the tokenizers library raises TypeError/Exception for bad vocabularies
            raise EsBiomedError(f"{self.vocab_file}: not a usable WordPiece vocabulary: {exc}") from exc
        tok.enable_truncation(max_length=self.max_length)
        tok.enable_padding(pad_id=tok.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        return tok

    def _make_forward(self) -> Callable[..., Any]:
        """Token tensors in, pooled ``[batch, dims]`` float32 out, as one graph call per batch.

        The model itself runs as the SavedModel's traced graph; wrapping the pooling in the same
        ``tf.function`` saves the ``[batch, seq, hidden]`` round trip through numpy.
        """
        tf = self._tf
        call = _model_callable(self._model, self.model_dir)
        pooling = self.pooling
        spec = tf.TensorSpec([None, None], tf.int32)

        @tf.function(input_signature=[spec, spec, spec])
        def forward(input_word_ids: Any, input_mask: Any, input_type_ids: Any) -> Any:
            inputs = {"input_word_ids": input_word_ids, "input_mask": input_mask, "input_type_ids": input_type_ids}
            tokens = tf.cast(call(inputs)["sequence_output"], tf.float32)
            if pooling == "cls":
                return tokens[:, 0]
            mask = tf.cast(input_mask, tf.float32)[:, :, None]
            if pooling == "max":
                return tf.reduce_max(tf.where(mask > 0, tokens, tf.constant(-1e9, tf.float32)), axis=1)
            return tf.reduce_sum(tokens * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)

        return forward

    def _device_scope(self) -> Any:
        return self._tf.device(self._device) if self._device else contextlib.nullcontext()


def _find_file(model_dir: Path, filename: str) -> Path | None:
    """``model_dir/assets/filename``, else ``model_dir/filename``, else ``None``."""
    for candidate in (model_dir / "assets" / filename, model_dir / filename):
        if candidate.is_file():
            return candidate
    return None


def _tf_device_name(device: str | None) -> str | None:
    """Map torch-style device strings to TensorFlow's; ``None`` leaves placement to TensorFlow."""
    if not device:
        return None
    kind, _, index = device.partition(":")
    if kind.lower() == "cpu":
        return "/CPU:0"
    if kind.lower() in ("cuda", "gpu"):
        return f"/GPU:{index or 0}"
    return device


def _load_savedmodel(tf: Any, model_dir: Path) -> Any:
    """Load with ``tensorflow_hub`` when it imports (it also resolves TF-Hub handles), else TensorFlow."""
    try:
        import tensorflow_hub as hub
    except ImportError:  # also: tensorflow_hub 0.16 needs pkg_resources, gone from setuptools>=81
        return tf.saved_model.load(str(model_dir))
    return hub.load(str(model_dir))


def _model_do_lower_case(model: Any) -> bool | None:
    """TF-Hub BERT encoders carry a boolean ``do_lower_case`` variable; ``None`` if absent."""
    var = getattr(model, "do_lower_case", None)
    if var is None:
        return None
    try:
        return bool(var.numpy())
    except (AttributeError, TypeError, ValueError):
        return None


def _model_callable(model: Any, model_dir: Path) -> Callable[[dict[str, Any]], Any]:
    """The model's graph function taking the TF-Hub BERT input dict and returning its output dict.

    Prefers the ``serving_default`` signature (a concrete function, no dispatch) when it has the TF-Hub
    input names and a ``sequence_output``; otherwise the SavedModel's restored ``__call__``.
    """
    signature = getattr(model, "signatures", {}).get("serving_default")
    if signature is not None:
        _, input_specs = signature.structured_input_signature
        outputs = signature.structured_outputs
        if set(input_specs) == set(_INPUT_NAMES) and isinstance(outputs, dict) and "sequence_output" in outputs:
            return lambda inputs: signature(**inputs)
    if callable(model):
        return lambda inputs: model(inputs)
    raise EsBiomedError(
        f"{model_dir}: the SavedModel follows neither the TF-Hub BERT convention (callable on a dict of "
        f"{', '.join(_INPUT_NAMES)}) nor has a serving_default signature returning sequence_output"
    )
