"""Load and save the Keras BERT (``transformers.TFBertModel``) from any of the sources es-biomed knows.

Sources accepted by :func:`load_bert`:

* a registered encoder name (``"all-MiniLM-L6-v2"``, see ``es_biomed/models/models.json``);
* a Hugging Face BERT directory (``config.json``, ``vocab.txt`` and PyTorch or TensorFlow weights), such as the
  directories :func:`save_bert` writes;
* a Google BERT TensorFlow checkpoint (the format of the original BERT release and of the TPU-trained
  BioMedBERT): a directory with ``bert_config.json``, ``vocab.txt`` and ``bert_model.ckpt.*`` or
  ``model.ckpt-<step>.*`` files (the highest step wins), or the checkpoint prefix itself
  (``.../model.ckpt-100000``). :func:`write_google_checkpoint` writes this format.

Nothing is ever downloaded: the tokenizer is built from the directory's ``vocab.txt``.

Example:
    >>> from es_biomed.train.tf.bert import load_bert, save_bert
    >>> model, tokenizer = load_bert("all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> model.config.hidden_size, tokenizer.model_max_length  # doctest: +SKIP
    (384, 256)
    >>> save_bert(model, tokenizer, "/models/minilm-copy")  # doctest: +SKIP
    PosixPath('/models/minilm-copy')
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from es_biomed.encode.base import read_pooling_config
from es_biomed.errors import EsBiomedError, MissingDependencyError, require

logger = logging.getLogger(__name__)

__all__ = ["POOLING_CONFIG_KEY", "CheckpointError", "load_bert", "save_bert", "write_google_checkpoint", "google_name"]

#: ``config.json`` key under which :func:`load_bert` records the sentence-embedding pooling of the source.
POOLING_CONFIG_KEY = "es_biomed_pooling"

GOOGLE_CONFIG_FILENAME = "bert_config.json"
GOOGLE_CHECKPOINT_PREFIX = "bert_model.ckpt"

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
        source: Registered encoder name, Hugging Face BERT directory, Google checkpoint directory or checkpoint
            prefix (see the module docstring).
        for_mlm: Return ``transformers.TFBertForMaskedLM`` (encoder plus masked-LM head) instead of
            ``transformers.TFBertModel`` (encoder plus pooler). Head weights absent from the source are freshly
            initialised; the output projection is always tied to the word embeddings.
        do_lower_case: Override the tokenizer's lower-casing. Defaults to ``tokenizer_config.json`` for a Hugging
            Face directory; for a Google checkpoint (which does not record it), to ``True`` unless the vocabulary
            holds capitalised word pieces (a cased model).
        max_length: Token limit stored as ``tokenizer.model_max_length``; defaults to the sentence-transformers
            ``max_seq_length``, else the model's ``max_position_embeddings``.

    Returns:
        ``(model, tokenizer)``: the TF Keras model (``TFBertModel``, or ``TFBertForMaskedLM`` with ``for_mlm``),
        built and holding the source's weights, and a ``transformers.BertTokenizerFast`` built from the source's
        ``vocab.txt``. The source's sentence-embedding pooling (``"mean"``, ``"cls"`` or ``"max"``) is recorded
        as ``model.config.es_biomed_pooling``. A masked-LM model also has ``mlm_head_from_source``: ``False`` when the
        source has no MLM-head weights (sentence-transformers models such as all-MiniLM-L6-v2), which are then
        freshly initialised (the output layer is tied to the word embeddings either way).

    Raises:
        EsBiomedError: ``source`` is neither a registered name nor a usable model directory.
        CheckpointError: A Google checkpoint lacks a variable the model needs, or holds one of the wrong shape;
            the message names the variable and the checkpoint.
        MissingDependencyError: TensorFlow, tf-keras or transformers' TensorFlow support is unavailable.
    """
    path = _resolve_source(source)
    if path.is_dir() and (path / "config.json").is_file():
        return _load_hf_dir(path, for_mlm=for_mlm, do_lower_case=do_lower_case, max_length=max_length)
    prefix = _google_checkpoint_prefix(path)
    if prefix is not None:
        return _load_google_checkpoint(prefix, for_mlm=for_mlm, do_lower_case=do_lower_case, max_length=max_length)
    raise EsBiomedError(
        f"{path} is not a BERT model: expected a Hugging Face directory (config.json, vocab.txt, weights) or a "
        f"Google checkpoint ({GOOGLE_CONFIG_FILENAME}, vocab.txt, bert_model.ckpt.* or model.ckpt-<step>.*)"
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
    if path.exists() or Path(f"{path}.index").is_file():
        return path
    from es_biomed.models.catalog import known, resolve

    try:
        return resolve(str(source))
    except KeyError:
        raise EsBiomedError(
            f"unknown BERT source {str(source)!r}: not a registered encoder ({', '.join(known('encoder'))}) "
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
    model, info = cls.from_pretrained(str(directory), from_pt=from_pt, local_files_only=True, output_loading_info=True)
    if for_mlm:
        missing = info.get("missing_keys", [])
        _mark_head(model, loaded=not any(k.startswith(("cls", "mlm___cls")) for k in missing), source=directory)
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


# -- Google BERT checkpoints -------------------------------------------------------------------------------------


class CheckpointError(ValueError, EsBiomedError):
    """A Google BERT checkpoint does not fit the model: a variable is missing or has the wrong shape."""


#: Keras weight name (model prefix and ``:0`` removed) -> Google BERT variable name, applied in order.
_NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"^bert/embeddings/word_embeddings/weight$", "bert/embeddings/word_embeddings"),
    (r"^bert/embeddings/(token_type|position)_embeddings/embeddings$", r"bert/embeddings/\1_embeddings"),
    (r"/layer_\._(\d+)/", r"/layer_\1/"),
    (r"^mlm___cls/predictions/bias$", "cls/predictions/output_bias"),
    (r"^mlm___cls/", "cls/"),
)
#: Variable groups a checkpoint may lack as a whole (then they keep their fresh initialisation).
_OPTIONAL_GROUPS = ("bert/pooler/", "cls/predictions/")


def google_name(keras_weight_name: str) -> str:
    """The Google BERT checkpoint name of a ``TFBertModel`` / ``TFBertForMaskedLM`` weight.

    Example:
        >>> google_name("tf_bert_model/bert/encoder/layer_._3/attention/self/query/kernel:0")
        'bert/encoder/layer_3/attention/self/query/kernel'
        >>> google_name("tf_bert_for_masked_lm/mlm___cls/predictions/bias:0")
        'cls/predictions/output_bias'
    """
    name = keras_weight_name.split(":", 1)[0]
    name = name.split("/", 1)[1] if "/" in name else name  # drop the model's own scope
    for pattern, repl in _NAME_RULES:
        name = re.sub(pattern, repl, name)
    return name


def _google_checkpoint_prefix(path: Path) -> Path | None:
    """The checkpoint prefix for a Google checkpoint directory or prefix path; ``None`` if ``path`` is neither."""
    if Path(f"{path}.index").is_file():
        return path
    if not path.is_dir():
        return None
    candidates = sorted(path.glob("*.ckpt*.index"))
    if not candidates:
        return None
    prefixes = [Path(str(c)[: -len(".index")]) for c in candidates]

    def step(prefix: Path) -> int:
        match = re.search(r"-(\d+)$", prefix.name)
        return int(match.group(1)) if match else -1

    return max(prefixes, key=lambda p: (step(p), p.name))


def _read_google_config(directory: Path) -> dict[str, Any]:
    cfg_path = directory / GOOGLE_CONFIG_FILENAME
    if not cfg_path.is_file():
        raise EsBiomedError(f"{directory}: no {GOOGLE_CONFIG_FILENAME} next to the checkpoint")
    try:
        config = json.loads(cfg_path.read_text())
    except ValueError as exc:
        raise EsBiomedError(f"{cfg_path}: not valid JSON: {exc}") from exc
    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    missing = [key for key in required if key not in config]
    if missing:
        raise EsBiomedError(f"{cfg_path}: missing field(s) {', '.join(missing)}")
    return dict(config)


def _vocab_is_cased(vocab_file: Path) -> bool:
    """Whether a WordPiece vocabulary holds capitalised pieces (``[CLS]``-style specials aside)."""
    with vocab_file.open(encoding="utf-8") as fh:
        for line in fh:
            piece = line.strip().removeprefix("##")
            if piece and not piece.startswith("[") and piece != piece.lower():
                return True
    return False


def _load_google_checkpoint(
    prefix: Path, *, for_mlm: bool, do_lower_case: bool | None, max_length: int | None
) -> tuple[Any, Any]:
    tf: Any = require("tensorflow", "tf")
    transformers = _require_tf_transformers()
    directory = prefix.parent
    google_cfg = _read_google_config(directory)
    vocab_file = directory / "vocab.txt"
    if do_lower_case is None and vocab_file.is_file():
        do_lower_case = not _vocab_is_cased(vocab_file)
    tokenizer = make_tokenizer(
        vocab_file,
        do_lower_case=True if do_lower_case is None else do_lower_case,
        max_length=int(max_length or google_cfg.get("max_position_embeddings") or 512),
    )
    config = transformers.BertConfig(**google_cfg)
    setattr(config, POOLING_CONFIG_KEY, "cls")  # Google BERT sentence vectors come from [CLS] (the pooler input)
    cls = transformers.TFBertForMaskedLM if for_mlm else transformers.TFBertModel
    model = cls(config)
    model(model.dummy_inputs, training=False)  # create the weights

    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError) as exc:
        raise EsBiomedError(f"{prefix}: unreadable TensorFlow checkpoint: {exc}") from exc
    shapes = reader.get_variable_to_shape_map()
    names = {w.name: google_name(w.name) for w in model.weights}
    head_loaded = True
    for group in _OPTIONAL_GROUPS:
        wanted = [g for g in names.values() if g.startswith(group)]
        if wanted and not any(g in shapes for g in wanted):
            logger.warning("%s has no %s* variables; those weights keep their fresh initialisation", prefix, group)
            names = {k: g for k, g in names.items() if not g.startswith(group)}
            head_loaded = head_loaded and group != "cls/predictions/"
    problems: list[str] = []
    for weight in model.weights:
        gname = names.get(weight.name)
        if gname is None:
            continue
        if gname not in shapes:
            problems.append(f"missing variable {gname!r} (for {weight.name}, shape {weight.shape.as_list()})")
        elif list(shapes[gname]) != weight.shape.as_list():
            problems.append(
                f"variable {gname!r} has shape {list(shapes[gname])}, the model expects {weight.shape.as_list()} "
                f"(check {GOOGLE_CONFIG_FILENAME})"
            )
    if problems:
        raise CheckpointError(f"{prefix}: checkpoint does not fit the model: " + "; ".join(problems))
    for weight in model.weights:
        gname = names.get(weight.name)
        if gname is not None:
            weight.assign(reader.get_tensor(gname))
    if for_mlm:
        _mark_head(model, loaded=head_loaded, source=prefix)
    return model, tokenizer


def _mark_head(model: Any, *, loaded: bool, source: Path) -> None:
    """Record on a masked-LM model whether its MLM head came from the source (``model.mlm_head_from_source``)."""
    model.mlm_head_from_source = loaded
    if not loaded:
        logger.warning(
            "%s has no masked-LM head weights: the head (transform dense + LayerNorm, output bias) is freshly "
            "initialised; its output layer is tied to the word embeddings",
            source,
        )


def write_google_checkpoint(model: Any, tokenizer: Any, out_dir: str | os.PathLike[str]) -> Path:
    """Write a Keras BERT as a Google BERT checkpoint directory (the inverse of loading one).

    Writes ``bert_config.json``, ``vocab.txt``, a ``checkpoint`` state file and ``bert_model.ckpt.{index,data-*}``
    whose variables carry the Google BERT names (``bert/embeddings/word_embeddings``,
    ``bert/encoder/layer_0/attention/self/query/kernel``, ``cls/predictions/output_bias``...). Only weights are
    written (no optimizer slots, no ``global_step``).

    Args:
        model: ``TFBertModel`` (writes ``bert/*`` including the pooler) or ``TFBertForMaskedLM`` (``bert/*``
            without the pooler, plus ``cls/predictions/*``).
        tokenizer: Its ``BertTokenizerFast``; supplies ``vocab.txt``.
        out_dir: Output directory; created if missing, must not hold a checkpoint already.

    Returns:
        The output directory, which :func:`load_bert` accepts.

    Raises:
        EsBiomedError: ``out_dir`` already holds a checkpoint.
    """
    tf: Any = require("tensorflow", "tf")
    out = Path(out_dir).expanduser()
    if (out / GOOGLE_CONFIG_FILENAME).exists() or Path(f"{out / GOOGLE_CHECKPOINT_PREFIX}.index").exists():
        raise EsBiomedError(f"{out} already holds a Google checkpoint; choose a new output directory")
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    google_cfg = {
        key: getattr(cfg, key)
        for key in (
            "attention_probs_dropout_prob",
            "hidden_act",
            "hidden_dropout_prob",
            "hidden_size",
            "initializer_range",
            "intermediate_size",
            "max_position_embeddings",
            "num_attention_heads",
            "num_hidden_layers",
            "type_vocab_size",
            "vocab_size",
        )
    }
    (out / GOOGLE_CONFIG_FILENAME).write_text(json.dumps(google_cfg, indent=2) + "\n")
    vocab = [token for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    named = {google_name(w.name): w for w in model.weights}
    prefix = out / GOOGLE_CHECKPOINT_PREFIX
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=list(named),
        shape_and_slices=[""] * len(named),
        tensors=[tf.convert_to_tensor(w) for w in named.values()],
    )
    (out / "checkpoint").write_text(
        f'model_checkpoint_path: "{GOOGLE_CHECKPOINT_PREFIX}"\nall_model_checkpoint_paths: "{GOOGLE_CHECKPOINT_PREFIX}"\n'
    )
    return out
