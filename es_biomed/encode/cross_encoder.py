"""Cross-encoders: a (query, document) pair in, one relevance logit out (the ``rerank_ce`` search mode).

A cross-encoder is a Hugging Face ``*ForSequenceClassification`` directory with ``num_labels=1`` (what
sentence-transformers' ``CrossEncoder.save`` writes): ``config.json``, weights (``model.safetensors`` or
``pytorch_model.bin``) and a tokenizer (``tokenizer.json`` or ``vocab.txt``). It runs on torch, offline.

Registered cross-encoders are the model catalog's entries of kind ``cross-encoder``
(:mod:`es_biomed.models.catalog`, which finds their files as it does every model's).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.errors import EsBiomedError, require
from es_biomed.models.catalog import Kind, known, lookup, resolve
from es_biomed.models.model_dir import missing_model_files, num_labels, read_model_config

__all__ = [
    "CROSS_ENCODER_KIND",
    "CrossEncoderScorer",
    "check_cross_encoder_dir",
    "known_cross_encoders",
    "load_cross_encoder",
    "resolve_cross_encoder",
]

CROSS_ENCODER_KIND: Kind = "cross-encoder"
#: Each group is satisfied by any one of its files.


def known_cross_encoders() -> list[str]:
    """Canonical names of the registered cross-encoders."""
    return known(CROSS_ENCODER_KIND)


def check_cross_encoder_dir(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check that ``path`` holds a one-logit sequence-classification model; returns its ``config.json``.

    Raises:
        EsBiomedError: files are missing (each missing file, or group of alternatives, is named), the config is
            unreadable, the model is not a ``*ForSequenceClassification``, or ``num_labels`` is not 1.
    """
    p = Path(path)
    if not p.is_dir():
        raise EsBiomedError(f"{p}: not a directory; a cross-encoder is a model directory (or a registered name)")
    missing = missing_model_files(p)
    if missing:
        raise EsBiomedError(f"{p} is not a cross-encoder directory: missing {', '.join(missing)}")
    config = read_model_config(p)
    archs = [str(a) for a in config.get("architectures") or []]
    if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
        raise EsBiomedError(
            f"{p}: architectures {archs} has no *ForSequenceClassification head; a cross-encoder is a sequence "
            "classification model with num_labels=1 (e.g. a sentence-transformers CrossEncoder save)"
        )
    labels = num_labels(config)
    if labels != 1:
        raise EsBiomedError(
            f"{p}: num_labels is {labels}, but a cross-encoder scores a pair with one logit (num_labels=1); "
            "train or convert the head with num_labels=1"
        )
    return config


def resolve_cross_encoder(name_or_path: str | os.PathLike[str]) -> tuple[str, Path]:
    """``(name, directory)`` of a registered cross-encoder, or of a cross-encoder directory (named by its path).

    Raises:
        EsBiomedError: neither a registered name nor a directory.
        MissingDependencyError: the package that ships a registered model is not installed.
    """
    key = str(name_or_path)
    spec = lookup(key, CROSS_ENCODER_KIND)
    if spec is None:
        path = Path(key).expanduser()
        if not path.is_dir():
            names = ", ".join(known_cross_encoders()) or "none"
            raise EsBiomedError(
                f"unknown cross-encoder {key!r}: not a registered name ({names}) and not a model directory"
            )
        return str(path), path
    return spec["name"], resolve(key, CROSS_ENCODER_KIND, files=())


class CrossEncoderScorer:
    """A cross-encoder on torch: ``score(query, texts)`` gives one raw logit per text.

    Args:
        model_dir: A ``*ForSequenceClassification`` directory with ``num_labels=1``.
        name: Name reported in plans and results; defaults to the directory path.
        max_length: Token limit of a (query, text) pair; only the text is truncated (``only_second``), unless the
            query alone does not fit (then both are, ``longest_first``).
        device: torch device string.
        threads: torch intra-op threads; defaults to ``$ES_BIOMED_THREADS`` if set (as the encoders), else torch's
            own default.

    Raises:
        EsBiomedError: the directory is not a cross-encoder (:func:`check_cross_encoder_dir`).
        MissingDependencyError: torch or transformers is not installed.

    Example:
        >>> ce = load_cross_encoder("/models/my-cross-encoder")                                # doctest: +SKIP
        >>> ce.score("aspirin and stroke", ["Aspirin. Prevents stroke.", "Insulin. Lowers glucose."])  # doctest: +SKIP
        array([ 4.1, -6.3], dtype=float32)
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        name: str | None = None,
        max_length: int | None = None,
        device: str = "cpu",
        threads: int | None = None,
        precision: str = "fp32",
    ) -> None:
        self.model_dir = Path(model_dir)
        check_cross_encoder_dir(self.model_dir)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self._torch = require("torch", "torch")
        transformers = require("transformers", "torch")
        self.name = name or str(self.model_dir)
        self.max_length = int(max_length or _saved_max_length(self.model_dir))
        self.device = device
        self.precision = _precision(precision, device)
        n_threads = threads or os.environ.get("ES_BIOMED_THREADS")
        if n_threads:
            self._torch.set_num_threads(int(n_threads))
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            self.model = transformers.AutoModelForSequenceClassification.from_pretrained(
                str(self.model_dir), local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise EsBiomedError(f"cross-encoder {self.name!r} in {self.model_dir}: {exc}") from exc
        if int(self.model.config.num_labels) != 1:
            raise EsBiomedError(f"{self.model_dir}: num_labels is {self.model.config.num_labels}, expected 1")
        self.model.eval().to(device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, max_length={self.max_length})"

    def _fits(self, query: str) -> bool:
        # [CLS] query [SEP] text [SEP]: leave room for the specials and a few text tokens
        return len(self.tokenizer(query, add_special_tokens=False)["input_ids"]) <= self.max_length - 8

    def score(self, query: str, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Raw logits of ``(query, text)`` for each text, float32 ``[len(texts)]`` in input order.

        Texts are scored in length-sorted batches (little padding), under ``torch.inference_mode()``.
        """
        texts = [str(t) for t in texts]
        out = np.zeros(len(texts), dtype=np.float32)
        if not texts:
            return out
        torch = self._torch
        truncation = "only_second" if self._fits(query) else "longest_first"
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            feats = self.tokenizer(
                [query] * len(idx),
                [texts[i] for i in idx],
                padding=True,
                truncation=truncation,
                max_length=self.max_length,
                return_tensors="pt",
            )
            with (
                torch.inference_mode(),
                torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=self.precision == "bf16"),
            ):
                logits = self.model(**{k: v.to(self.device) for k, v in feats.items()}).logits
            out[idx] = logits.reshape(-1).float().cpu().numpy()
        return out


def _saved_max_length(model_dir: Path) -> int:
    """The pair length the model was saved with (its tokenizer's ``model_max_length``, which a sentence-transformers
    CrossEncoder sets to its ``max_length``), at most 512; 512 when unset."""
    try:
        saved = json.loads((model_dir / "tokenizer_config.json").read_text()).get("model_max_length")
    except (OSError, ValueError, AttributeError):
        saved = None
    return min(int(saved), 512) if isinstance(saved, (int, float)) and 0 < saved <= 1_000_000 else 512


def _precision(precision: str, device: str) -> str:
    """``fp32`` (the default: the model's own logits), ``bf16`` (autocast, about 2.5 times faster on an AMX CPU;
    logits move by about 2e-3, enough to swap near ties), or ``auto`` (bf16 where the CPU has AMX / AVX512-BF16 and ``ES_BIOMED_BF16`` is not off)."""
    if precision not in ("auto", "bf16", "fp32"):
        raise EsBiomedError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    if precision != "auto":
        return precision
    if device != "cpu":
        return "fp32"
    from es_biomed.encode.cpu import bf16_enabled

    return "bf16" if bf16_enabled() else "fp32"


def load_cross_encoder(name_or_path: str | os.PathLike[str], **kwargs: Any) -> CrossEncoderScorer:
    """A cross-encoder by registered name (``models.json``, ``"kind": "cross-encoder"``) or by directory.

    Args:
        name_or_path: A registered name or a model directory.
        **kwargs: Passed to :class:`CrossEncoderScorer` (``max_length``, ``device``, ``threads``).

    Raises:
        EsBiomedError: unknown name, or the files are not a one-logit cross-encoder (the missing files are named).
        MissingDependencyError: torch / transformers, or the package shipping the model, is not installed.
    """
    name, path = resolve_cross_encoder(name_or_path)
    if lookup(name, CROSS_ENCODER_KIND) is not None and not path.is_dir():
        raise EsBiomedError(
            f"cross-encoder {name!r} should be at {path}, but the directory is missing: it is not shipped (on 2 CPU "
            "cores it did not beat the cosine rescore, see the README). Train one with training/train_cross_encoder.py "
            "and put its fp16 directory there, or pass a model directory"
        )
    return CrossEncoderScorer(path, name=name, **kwargs)
