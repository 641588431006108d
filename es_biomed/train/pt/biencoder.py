"""Bi-encoder fine-tuning: InfoNCE over in-batch and mined hard negatives (sentence-transformers'
``MultipleNegativesRankingLoss``, scale 20 = temperature 0.05; Henderson et al. 2017, Karpukhin et al. 2020).

Every batch comes from one source (``MultiDatasetBatchSamplers.PROPORTIONAL``), so in-batch negatives are
in-domain and lengths are alike, and holds no text twice (``BatchSamplers.NO_DUPLICATES``: a repeated question or
shared context would otherwise be pushed away from itself). The model is the sentence-transformers directory
(mean pooling, L2 normalization) that :class:`~es_biomed.encode.torch_backend.TorchEncoder` serves; it is saved in
fp32 and as an fp16 copy (what ships), each with ``training_meta.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from es_biomed.models.model_dir import resolve_model_dir
from es_biomed.train.pt.common import amp_dtype, config_from_dict, dataset_meta, run_trainer, trainer_arguments
from es_biomed.train.pt.data import Selection, pair_columns, select_pairs

__all__ = ["BiEncoderConfig", "train_biencoder", "config_from_dict"]


@dataclass(frozen=True)
class BiEncoderConfig:
    base_model: str = "all-MiniLM-L6-v2"
    #: ``{kind: max pairs}`` (``None``: all of that kind); see :class:`~es_biomed.train.pt.data.Selection`.
    budget: dict[str, int | None] = field(default_factory=lambda: {"supervised": None, "title": 2000, "ict": 2000})
    negatives: int = 1
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    scale: float = 20.0
    max_seq_length: int = 256
    seed: int = 42
    #: ``"auto"`` (bf16 where the CPU or GPU supports it), ``"bf16"``, ``"fp16"`` (GPU) or ``"fp32"``.
    precision: str = "auto"


def train_biencoder(pairs_file: str | Path, out_dir: str | Path, config: BiEncoderConfig) -> dict[str, Any]:
    """Train, then save ``out_dir/fp32`` and ``out_dir/fp16`` (sentence-transformers dirs) with metadata.

    Returns:
        The training metadata (also in each ``training_meta.json``).
    """
    import torch
    from datasets import Dataset, DatasetDict
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )
    from sentence_transformers.training_args import BatchSamplers, MultiDatasetBatchSamplers

    pairs_path = Path(pairs_file)
    out = Path(out_dir)
    base = resolve_model_dir(config.base_model, "base model")
    pairs, counts = select_pairs(pairs_path, Selection(config.budget, config.negatives, config.seed))
    by_source: dict[str, list[Any]] = {}
    for p in pairs:
        by_source.setdefault(p.source, []).append(p)
    train = DatasetDict(
        {name: Dataset.from_dict(pair_columns(ps, config.negatives)) for name, ps in sorted(by_source.items())}
    )
    torch.manual_seed(config.seed)
    model = SentenceTransformer(str(base), device="cuda" if torch.cuda.is_available() else "cpu")
    model.max_seq_length = config.max_seq_length
    precision = amp_dtype(config.precision)
    args = SentenceTransformerTrainingArguments(
        **trainer_arguments(
            config,
            out,
            precision,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,
            dataloader_drop_last=True,
        )
    )
    loss = losses.MultipleNegativesRankingLoss(model, scale=config.scale)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=loss)
    data = {**dataset_meta(pairs_path), "selected": counts, "pairs": len(pairs)}
    return run_trainer(
        trainer, "bi-encoder", config, precision, base, data, out, lambda d: model.save(str(d)), model.half
    )
