"""Cross-encoder fine-tuning: a BERT with a one-logit head over ``[CLS] query [SEP] document [SEP]``, trained
with binary cross-entropy on judged pairs (label 1) and their mined hard negatives (label 0), with
sentence-transformers' ``CrossEncoderTrainer`` (Nogueira and Cho 2019, "Passage Re-ranking with BERT").

Started from a bi-encoder's weights (all-MiniLM-L6-v2), the head is new and seeded. The result is a Hugging Face
``BertForSequenceClassification`` directory, what :mod:`es_biomed.encode.cross_encoder` serves and what eland
uploads for ``text_similarity``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from es_biomed.models.model_dir import resolve_model_dir
from es_biomed.train.pt.common import amp_dtype, dataset_meta, run_trainer, trainer_arguments
from es_biomed.train.pt.data import Selection, select_pairs

__all__ = ["CrossEncoderConfig", "train_cross_encoder"]


@dataclass(frozen=True)
class CrossEncoderConfig:
    base_model: str = "all-MiniLM-L6-v2"
    budget: dict[str, int | None] = field(default_factory=lambda: {"supervised": None})
    negatives: int = 1
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 16
    learning_rate: float = 3e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 320
    seed: int = 42
    precision: str = "auto"


def train_cross_encoder(pairs_file: str | Path, out_dir: str | Path, config: CrossEncoderConfig) -> dict[str, Any]:
    """Train and save ``out_dir/fp32`` and ``out_dir/fp16`` (``BertForSequenceClassification``, one label)."""
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    pairs_path = Path(pairs_file)
    out = Path(out_dir)
    base = resolve_model_dir(config.base_model, "base model")
    pairs, counts = select_pairs(pairs_path, Selection(config.budget, config.negatives, config.seed))
    rows: dict[str, list[Any]] = {"query": [], "passage": [], "label": []}
    for p in pairs:
        for text, label in [(p.positive, 1.0)] + [(n.text, 0.0) for n in p.negatives]:
            rows["query"].append(p.query)
            rows["passage"].append(text)
            rows["label"].append(label)
    torch.manual_seed(config.seed)
    model = CrossEncoder(
        str(base), num_labels=1, max_length=config.max_length, device="cuda" if torch.cuda.is_available() else "cpu"
    )
    precision = amp_dtype(config.precision)
    args = CrossEncoderTrainingArguments(**trainer_arguments(config, out, precision))
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(config.negatives)))
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=Dataset.from_dict(rows), loss=loss)
    data = {**dataset_meta(pairs_path), "selected": counts, "pairs": len(pairs), "rows": len(rows["label"])}
    return run_trainer(
        trainer,
        "cross-encoder",
        config,
        precision,
        base,
        data,
        out,
        lambda d: model.save_pretrained(str(d)),
        model.model.half,
    )
