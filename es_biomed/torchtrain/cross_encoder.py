"""Cross-encoder fine-tuning: a BERT with a one-logit head over ``[CLS] query [SEP] document [SEP]``, trained
with binary cross-entropy on judged pairs (label 1) and their mined hard negatives (label 0), with
sentence-transformers' ``CrossEncoderTrainer`` (Nogueira and Cho 2019, "Passage Re-ranking with BERT").

Started from a bi-encoder's weights (all-MiniLM-L6-v2), the head is new and seeded. The result is a Hugging Face
``BertForSequenceClassification`` directory, what :mod:`es_biomed.encode.cross_encoder` serves and what eland
uploads for ``text_similarity``.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from es_biomed.encode.model_dir import resolve_model_dir
from es_biomed.torchtrain.biencoder import _dataset_meta, amp_dtype, versions
from es_biomed.torchtrain.data import Selection, select_pairs
from es_biomed.traindata.provenance import write_training_meta

__all__ = ["CrossEncoderConfig", "train_cross_encoder"]

logger = logging.getLogger(__name__)


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
    args = CrossEncoderTrainingArguments(
        output_dir=str(out / "trainer"),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_ratio=config.warmup_ratio,
        weight_decay=config.weight_decay,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
    )
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(config.negatives)))
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=Dataset.from_dict(rows), loss=loss)
    t0 = time.perf_counter()
    state = trainer.train()
    seconds = time.perf_counter() - t0
    steps = int(state.global_step)
    meta: dict[str, Any] = {
        "kind": "cross-encoder",
        "config": asdict(config),
        "precision": precision,
        "base_model": {"name": config.base_model, "path": str(base)},
        "data": {**_dataset_meta(pairs_path), "selected": counts, "pairs": len(pairs), "rows": len(rows["label"])},
        "training": {
            "steps": steps,
            "seconds": round(seconds, 1),
            "examples_per_second": round(steps * config.batch_size / seconds, 2) if seconds else None,
            "device": "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "losses": [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h],
        },
        "versions": versions(),
    }
    fp32 = out / "fp32"
    model.save_pretrained(str(fp32))
    write_training_meta(fp32, {**meta, "dtype": "float32"})
    model.model.half()
    fp16 = out / "fp16"
    model.save_pretrained(str(fp16))
    write_training_meta(fp16, {**meta, "dtype": "float16"})
    shutil.rmtree(out / "trainer", ignore_errors=True)
    return meta
