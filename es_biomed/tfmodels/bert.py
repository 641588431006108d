"""Load and save the Keras BERT (``transformers.TFBertModel``) from any of the sources es-biomed knows.

Sources accepted by :func:`load_bert`:

* a registered encoder name (``"all-MiniLM-L6-v2"``, see ``es_biomed/encode/models.json``);
* a Hugging Face BERT directory (``config.json``, ``vocab.txt`` and PyTorch or TensorFlow weights), such as the
  directories :func:`save_bert` writes.

Nothing is ever downloaded: the tokenizer is built from the directory's ``vocab.txt``.

Example:
    >>> from es_biomed.tfmodels.bert import load_bert, save_bert
    >>> model, tokenizer = load_bert("all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> model.config.hidden_size, tokenizer.model_max_length  # doctest: +SKIP
    (384, 256)
    >>> save_bert(model, tokenizer, "/models/minilm-copy")  # doctest: +SKIP
    PosixPath('/models/minilm-copy')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from es_biomed.encode.base import read_pooling_config
from es_biomed.errors import EsBiomedError, MissingDependencyError, require

__all__ = ["POOLING_CONFIG_KEY", "load_bert", "save_bert"]

#: ``config.json`` key under which :func:`load_bert` records the sentence-embedding pooling of the source.
POOLING_CONFIG_KEY = "es_biomed_pooling"

_TF_WEIGHTS = ("tf_model.h5",)
_PT_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def load_bert(
    source: str | os.PathLike[str],
    *,
    for_mlm: bool = False,
    do_lower_case: bool | None = None,
    max_length: int | None = None,
) -> tuple[Any, Any]:
    """Load a BERT model as a Keras model, with its WordPiece tokenizer.

    Args:
        source: Registered encoder name or Hugging Face BERT directory (see the module docstring).
        for_mlm: Return ``transformers.TFBertForMaskedLM`` (encoder plus masked-LM head) instead of
            ``transformers.TFBertModel`` (encoder plus pooler). Head weights absent from the source are freshly
            initialised; the output projection is always tied to the word embeddings.
        do_lower_case: Override the tokenizer's lower-casing; defaults to ``tokenizer_config.json``, else ``True``.
        max_length: Token limit stored as ``tokenizer.model_max_length``; defaults to the sentence-transformers
            ``max_seq_length``, else the model's ``max_position_embeddings``.

    Returns:
        ``(model, tokenizer)``: the TF Keras model (``TFBertModel``, or ``TFBertForMaskedLM`` with ``for_mlm``),
        built and holding the source's weights, and a ``transformers.BertTokenizerFast`` built from the source's
        ``vocab.txt``. The source's sentence-embedding pooling (``"mean"``, ``"cls"`` or ``"max"``) is recorded
        as ``model.config.es_biomed_pooling``.

    Raises:
        EsBiomedError: ``source`` is neither a registered name nor a usable model directory.
        MissingDependencyError: TensorFlow, tf-keras or transformers' TensorFlow support is unavailable.
    """
    directory = _resolve_source(source)
    if (directory / "config.json").is_file():
        return _load_hf_dir(directory, for_mlm=for_mlm, do_lower_case=do_lower_case, max_length=max_length)
    raise EsBiomedError(
        f"{directory} is not a BERT model directory: expected a Hugging Face directory (config.json, vocab.txt, "
        "weights)"
    )


def save_bert(model: Any, tokenizer: Any, out_dir: str | os.PathLike[str]) -> Path:
    """Save a Keras BERT and its tokenizer as a Hugging Face directory that :func:`load_bert` loads back.

    Writes ``config.json``, ``tf_model.h5``, ``vocab.txt``, ``tokenizer_config.json`` and, so the directory also
    reads as a sentence-transformers model, ``1_Pooling/config.json`` and ``sentence_bert_config.json``.

    Args:
        model: ``TFBertModel`` or ``TFBertForMaskedLM`` (a masked-LM model keeps its head; loading the directory
            without ``for_mlm`` drops it).
        tokenizer: The ``BertTokenizerFast`` returned by :func:`load_bert`.
        out_dir: Output directory; created if missing, must not hold a model already.

    Returns:
        The output directory.

    Raises:
        EsBiomedError: ``out_dir`` already holds a model.
    """
    out = Path(out_dir).expanduser()
    if (out / "config.json").exists():
        raise EsBiomedError(f"{out} already holds a model (config.json); choose a new output directory")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    pooling = getattr(model.config, POOLING_CONFIG_KEY, None) or "mean"
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": int(model.config.hidden_size),
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_max_tokens": pooling == "max",
            },
            indent=2,
        )
        + "\n"
    )
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": int(tokenizer.model_max_length)}, indent=2) + "\n"
    )
    return out


# -- sources ---------------------------------------------------------------------------------------------------


def _resolve_source(source: str | os.PathLike[str]) -> Path:
    """Registered encoder name -> its directory; anything else is taken as a path."""
    path = Path(source).expanduser()
    if path.exists():
        return path
    from es_biomed.encode.registry import known_encoders, resolve_model_path

    try:
        return resolve_model_path(str(source))
    except KeyError:
        raise EsBiomedError(
            f"unknown BERT source {str(source)!r}: not a registered encoder ({', '.join(known_encoders())}) "
            "and not an existing path"
        ) from None


def _load_hf_dir(
    directory: Path, *, for_mlm: bool, do_lower_case: bool | None, max_length: int | None
) -> tuple[Any, Any]:
    config_path = directory / "config.json"
    config: dict[str, Any] = json.loads(config_path.read_text())
    if config.get("model_type") != "bert":
        raise EsBiomedError(f"{config_path}: model_type {config.get('model_type')!r} is not 'bert'")
    if any((directory / name).is_file() for name in _TF_WEIGHTS):
        from_pt = False
    elif any((directory / name).is_file() for name in _PT_WEIGHTS):
        from_pt = True
    else:
        raise EsBiomedError(f"{directory}: no weights file (expected one of {', '.join(_TF_WEIGHTS + _PT_WEIGHTS)})")
    pooling, st_max_length = read_pooling_config(directory)
    tokenizer = make_tokenizer(
        directory / "vocab.txt",
        do_lower_case=_tokenizer_lower_case(directory) if do_lower_case is None else do_lower_case,
        max_length=int(max_length or st_max_length or config.get("max_position_embeddings") or 512),
    )
    transformers = _require_tf_transformers()
    cls = transformers.TFBertForMaskedLM if for_mlm else transformers.TFBertModel
    model = cls.from_pretrained(str(directory), from_pt=from_pt, local_files_only=True)
    setattr(model.config, POOLING_CONFIG_KEY, getattr(model.config, POOLING_CONFIG_KEY, None) or pooling)
    return model, tokenizer


def _tokenizer_lower_case(directory: Path) -> bool:
    tok_cfg = directory / "tokenizer_config.json"
    if tok_cfg.is_file():
        return bool(json.loads(tok_cfg.read_text()).get("do_lower_case", True))
    return True


def make_tokenizer(vocab_file: Path, *, do_lower_case: bool, max_length: int) -> Any:
    """A ``transformers.BertTokenizerFast`` built from a WordPiece ``vocab.txt`` (no hub access).

    Raises:
        EsBiomedError: ``vocab_file`` is missing.
    """
    if not vocab_file.is_file():
        raise EsBiomedError(f"{vocab_file.parent}: no vocab.txt; BERT needs its WordPiece vocabulary file")
    transformers: Any = require("transformers", "tf")
    return transformers.BertTokenizerFast(
        vocab_file=str(vocab_file), do_lower_case=do_lower_case, model_max_length=max_length
    )


def _require_tf_transformers() -> Any:
    """``transformers`` with its TensorFlow classes importable, else a clear :class:`MissingDependencyError`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    transformers: Any = require("transformers", "tf")
    if not transformers.is_tf_available():
        raise MissingDependencyError(
            "transformers has TensorFlow support disabled in this process (USE_TORCH=1 or USE_TF=0 was set "
            "when transformers was first imported); unset them to use the Keras BERT"
        )
    try:
        transformers.TFBertModel  # noqa: B018 - the import happens on attribute access
    except (ImportError, ValueError, RuntimeError) as exc:
        raise MissingDependencyError(
            f"transformers' TensorFlow models could not be imported ({exc}). "
            "Install them with: pip install 'es-biomed[tf]'"
        ) from exc
    return transformers
