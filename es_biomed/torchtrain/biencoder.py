"""Bi-encoder fine-tuning: InfoNCE over in-batch and mined hard negatives (sentence-transformers'
``MultipleNegativesRankingLoss``, scale 20 = temperature 0.05; Henderson et al. 2017, Karpukhin et al. 2020).

Every batch comes from one source (``MultiDatasetBatchSamplers.PROPORTIONAL``), so in-batch negatives are
in-domain and lengths are alike, and holds no text twice (``BatchSamplers.NO_DUPLICATES``: a repeated question or
shared context would otherwise be pushed away from itself). The model is the sentence-transformers directory
(mean pooling, L2 normalization) that :class:`~es_biomed.encode.torch_backend.TorchEncoder` serves; it is saved in
fp32 and as an fp16 copy (what ships), each with ``training_meta.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from es_biomed.encode.model_dir import resolve_model_dir
from es_biomed.torchtrain.data import Selection, pair_columns, select_pairs
from es_biomed.traindata.provenance import sha256_file, write_training_meta

__all__ = ["BiEncoderConfig", "train_biencoder", "amp_dtype", "versions"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BiEncoderConfig:
    base_model: str = "all-MiniLM-L6-v2"
    #: ``{kind: max pairs}`` (``None``: all of that kind); see :class:`~es_biomed.torchtrain.data.Selection`.
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


def amp_dtype(precision: str) -> str:
    """The autocast precision to use: ``auto`` means bf16 on a CUDA device with bf16 or a CPU with AMX /
    AVX512-BF16, else fp32."""
    if precision != "auto":
        return precision
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "fp32"
    return "bf16" if ("amx_bf16" in flags or "avx512_bf16" in flags) else "fp32"


def versions() -> dict[str, str]:
    import sentence_transformers
    import torch
    import transformers

    from es_biomed import __version__

    return {
        "es_biomed": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
    }


def _dataset_meta(pairs_file: Path) -> dict[str, Any]:
    manifest = pairs_file.parent / "manifest.json"
    meta: dict[str, Any] = {"pairs_file": str(pairs_file), "pairs_sha256": sha256_file(pairs_file)}
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        meta.update(
            dataset_sha256=m.get("dataset_sha256"),
            sources={k: v.get("inputs_sha256") for k, v in m.get("sources", {}).items()},
            splits={k: v.get("split") for k, v in m.get("sources", {}).items()},
            mining=m.get("mining"),
        )
    return meta


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
    from transformers import TrainerCallback

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
    losses_seen: list[tuple[int, float]] = []

    class _Log(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
            if logs and "loss" in logs:
                losses_seen.append((state.global_step, float(logs["loss"])))
                logger.info("step %d loss %.4f", state.global_step, logs["loss"])

    args = SentenceTransformerTrainingArguments(
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
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        dataloader_drop_last=True,
    )
    loss = losses.MultipleNegativesRankingLoss(model, scale=config.scale)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=loss, callbacks=[_Log()])
    t0 = time.perf_counter()
    state = trainer.train()
    seconds = time.perf_counter() - t0
    steps = int(state.global_step)
    meta: dict[str, Any] = {
        "kind": "bi-encoder",
        "config": asdict(config),
        "precision": precision,
        "base_model": {"name": config.base_model, "path": str(base)},
        "data": {**_dataset_meta(pairs_path), "selected": counts, "pairs": len(pairs)},
        "training": {
            "steps": steps,
            "seconds": round(seconds, 1),
            "examples_per_second": round(steps * config.batch_size / seconds, 2) if seconds else None,
            "device": "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "losses": losses_seen,
        },
        "versions": versions(),
    }
    fp32 = out / "fp32"
    model.save(str(fp32))
    write_training_meta(fp32, {**meta, "dtype": "float32"})
    model.half()
    fp16 = out / "fp16"
    model.save(str(fp16))
    write_training_meta(fp16, {**meta, "dtype": "float16"})
    import shutil

    shutil.rmtree(out / "trainer", ignore_errors=True)
    return meta


def config_from_dict(d: dict[str, Any], cls: type = BiEncoderConfig, where: str = "config") -> Any:
    """``cls(**d)`` for a training-config dataclass, refusing unknown keys (naming them and ``where``)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        from es_biomed.errors import EsBiomedError

        raise EsBiomedError(
            f"{where}: unknown {cls.__name__} key(s): {', '.join(unknown)} (known: {', '.join(sorted(names))})"
        )
    return cls(**d)
