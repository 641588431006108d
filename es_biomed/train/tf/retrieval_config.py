"""The settings and the report of the contrastive retrieval fine-tuning (saved beside every trained model)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DEFAULT_SCALE", "RetrievalTrainConfig", "TrainResult"]


#: sentence-transformers ``MultipleNegativesRankingLoss`` default (temperature 0.05).
DEFAULT_SCALE = 20.0


@dataclass(frozen=True)
class RetrievalTrainConfig:
    """Hyper-parameters of one training run; saved in ``training_meta.json`` beside the weights.

    Args:
        base_model: Registered encoder name or Hugging Face BERT directory (see :func:`~es_biomed.train.tf.load_bert`).
        epochs: Passes over the examples.
        batch_size: Examples per step (each brings a question, its positive and ``hard_negatives`` negatives).
        learning_rate: Peak learning rate of AdamW.
        weight_decay: AdamW decoupled weight decay (not applied to biases and LayerNorm weights).
        warmup_ratio: Share of the steps with a linear warm-up from 0; the rest decays linearly to 0.
        max_grad_norm: Global-norm gradient clipping (``None``: none).
        scale: Similarity scale of the InfoNCE logits (1 / temperature).
        query_max_length: Token limit of questions.
        doc_max_length: Token limit of documents.
        hard_negatives: BM25 hard negatives per example.
        mining_depth: BM25 hits looked at when mining (positives among them are skipped).
        mining_skip: Non-relevant BM25 hits skipped before taking negatives (guards against unjudged positives).
        seed: Seeds TensorFlow, NumPy and Python; the batch order of epoch ``e`` is a permutation drawn from
            ``numpy.random.default_rng(seed + e)``.
        max_steps: Stop after this many optimizer steps (``None``: all epochs).
        mixed_precision: ``mixed_float16`` compute with dynamic loss scaling (for GPUs; slower on CPU).
    """

    base_model: str = "all-MiniLM-L6-v2"
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    scale: float = DEFAULT_SCALE
    query_max_length: int = 64
    doc_max_length: int = 256
    hard_negatives: int = 1
    mining_depth: int = 30
    mining_skip: int = 0
    seed: int = 42
    max_steps: int | None = None
    mixed_precision: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "query_max_length", "doc_max_length", "mining_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.hard_negatives < 0 or self.mining_skip < 0:
            raise ValueError("hard_negatives and mining_skip must be >= 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetrievalTrainConfig:
        """Rebuild a config from :meth:`to_dict` output (unknown keys raise ``TypeError``)."""
        return cls(**dict(d))


@dataclass
class TrainResult:
    """What :func:`train_retrieval` returns.

    Attributes:
        model: The trained ``TFBertModel``.
        tokenizer: Its tokenizer.
        losses: Loss of every step, in order.
        steps: Optimizer steps taken.
        seconds: Wall time of the training loop (tokenization included, model loading excluded).
        examples_per_second: ``steps * batch_size / seconds`` (the last, smaller batch counted as it is).
    """

    model: Any
    tokenizer: Any
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    examples_per_second: float = 0.0
    examples_seen: int = 0
