"""What the bi-encoder and cross-encoder trainers share: precision, trainer arguments, run metadata, saving."""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from es_biomed.errors import EsBiomedError
from es_biomed.models.files import sha256_file
from es_biomed.train.data.provenance import write_training_meta

__all__ = ["amp_dtype", "versions", "dataset_meta", "trainer_arguments", "run_trainer", "config_from_dict"]


def amp_dtype(precision: str) -> str:
    """The autocast precision to use: ``auto`` means bf16 on a CUDA device with bf16 or a CPU with AMX /
    AVX512-BF16 (unless ``ES_BIOMED_BF16=off``), else fp16 on CUDA and fp32 on the CPU."""
    if precision != "auto":
        return precision
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    from es_biomed.encode.cpu import bf16_enabled

    return "bf16" if bf16_enabled() else "fp32"


def versions() -> dict[str, str]:
    import sentence_transformers
    import torch
    import transformers

    from es_biomed.version import __version__

    return {
        "es_biomed": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
    }


def dataset_meta(pairs_file: Path) -> dict[str, Any]:
    """The pair file's sha256 and, from its ``manifest.json``, the dataset hash, input hashes and splits."""
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


def trainer_arguments(config: Any, out: Path, precision: str, **extra: Any) -> dict[str, Any]:
    """Keyword arguments of a sentence-transformers ``*TrainingArguments`` from a trainer config."""
    import torch

    return {
        "output_dir": str(out / "trainer"),
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps,
        "per_device_train_batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "warmup_ratio": config.warmup_ratio,
        "weight_decay": config.weight_decay,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": not torch.cuda.is_available(),
        "seed": config.seed,
        "data_seed": config.seed,
        "logging_steps": 10,
        "save_strategy": "no",
        "report_to": "none",
        **extra,
    }


def run_trainer(
    trainer: Any,
    kind: str,
    config: Any,
    precision: str,
    base: Path,
    data: dict[str, Any],
    out: Path,
    save: Callable[[Path], None],
    to_half: Callable[[], None],
) -> dict[str, Any]:
    """Train, then save ``out/fp32`` and ``out/fp16`` (``save(dir)``; ``to_half()`` in between), each with
    ``training_meta.json``; returns the metadata."""
    import torch

    t0 = time.perf_counter()
    state = trainer.train()
    seconds = time.perf_counter() - t0
    steps = int(state.global_step)
    meta: dict[str, Any] = {
        "kind": kind,
        "config": asdict(config),
        "precision": precision,
        "base_model": {"name": config.base_model, "path": str(base)},
        "data": data,
        "training": {
            "steps": steps,
            "seconds": round(seconds, 1),
            "examples_per_second": round(steps * config.batch_size / seconds, 2) if seconds else None,
            "device": "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "losses": [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h],
        },
        "versions": versions(),
    }
    save(out / "fp32")
    write_training_meta(out / "fp32", {**meta, "dtype": "float32"})
    to_half()
    save(out / "fp16")
    write_training_meta(out / "fp16", {**meta, "dtype": "float16"})
    shutil.rmtree(out / "trainer", ignore_errors=True)
    return meta


def config_from_dict(d: dict[str, Any], cls: type, where: str = "config") -> Any:
    """``cls(**d)`` for a training-config dataclass, refusing unknown keys (naming them and ``where``)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise EsBiomedError(
            f"{where}: unknown {cls.__name__} key(s): {', '.join(unknown)} (known: {', '.join(sorted(names))})"
        )
    return cls(**d)
