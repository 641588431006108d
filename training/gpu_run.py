"""The whole model training in one prepared run, for a lent GPU (or a tiny CPU dry run of the same code).

    # on the GPU machine (the `device` tool), weights and summary come back under $OUT:
    python training/gpu_run.py --config training/configs/gpu.json --data ../shared/data --out $OUT/run
    # dry run here, on the CPU, with the tiny config (same steps, a few examples each):
    python training/gpu_run.py --config training/configs/tiny.json --data ../shared/data --out runs/gpu-dry-run

Steps, in order, each skipped once ``time_budget_s`` is spent (the summary says which ran): build the dataset
(unless ``"pairs"`` names an existing file), train every bi-encoder of ``"biencoders"`` for each of its seeds, then
the cross-encoder. Every run writes fp32 and fp16 weights with ``training_meta.json``; ``summary.json`` holds the
examples/s, seconds and precision of each. Mixed precision is bf16 autocast on a GPU that supports it (fp16 with
loss scaling otherwise) and on CPUs with AMX. Evaluation is done afterwards on the CPU, with the fp16 weights
brought back (``training/eval_retrieval.py``), so the GPU time goes to training only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from es_biomed.errors import EsBiomedError
from es_biomed.train.data.build import PAIRS_FILE, DatasetConfig, build_dataset
from es_biomed.train.pt.biencoder import BiEncoderConfig, config_from_dict, train_biencoder
from es_biomed.train.pt.cross_encoder import CrossEncoderConfig, train_cross_encoder

KEYS = {"dataset", "pairs", "biencoders", "cross_encoder", "time_budget_s"}


def load_config(path: str) -> dict[str, Any]:
    """Read and check the run config (unknown keys refused, naming them and the file)."""
    try:
        cfg = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EsBiomedError(f"{path}: config file not found") from None
    except json.JSONDecodeError as exc:
        raise EsBiomedError(f"{path}: line {exc.lineno}: malformed JSON: {exc.msg}") from None
    unknown = sorted(set(cfg) - KEYS)
    if unknown:
        raise EsBiomedError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
    for i, job in enumerate(cfg.get("biencoders", [])):
        extra = sorted(set(job) - {"name", "seeds", "config"})
        if extra or "name" not in job:
            raise EsBiomedError(
                f"{path}: biencoders[{i}] needs 'name' and takes only name, seeds, config; got {extra}"
            )
        config_from_dict(job.get("config", {}), BiEncoderConfig, f"{path}: biencoders[{i}].config")
    if "cross_encoder" in cfg:
        config_from_dict(cfg["cross_encoder"], CrossEncoderConfig, f"{path}: cross_encoder")
    if "dataset" in cfg:
        ds = dict(cfg["dataset"])
        if "sources" in ds:
            ds["sources"] = tuple(ds["sources"])
        config_from_dict(ds, DatasetConfig, f"{path}: dataset")
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = load_config(args.config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = float(cfg.get("time_budget_s", 1e9))
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"config": cfg, "jobs": [], "skipped": []}

    def write() -> None:
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    if cfg.get("pairs"):
        pairs = Path(cfg["pairs"])
    else:
        ds = dict(cfg.get("dataset", {}))
        if "sources" in ds:
            ds["sources"] = tuple(ds["sources"])
        manifest = build_dataset(args.data, out / "dataset", DatasetConfig(**ds), progress=print)
        pairs = out / "dataset" / PAIRS_FILE
        summary["dataset"] = {k: manifest[k] for k in ("pairs", "pairs_per_source_kind", "mining", "seconds")}
    write()
    jobs: list[tuple[str, Any]] = []
    for job in cfg.get("biencoders", []):
        for seed in job.get("seeds", [42]):
            c = dataclasses.replace(config_from_dict(job.get("config", {}), BiEncoderConfig), seed=seed)
            jobs.append((f"{job['name']}/seed-{seed}", c))
    if "cross_encoder" in cfg:
        jobs.append(("cross-encoder", config_from_dict(cfg["cross_encoder"], CrossEncoderConfig)))
    for name, c in jobs:
        if time.perf_counter() - t0 > budget:
            summary["skipped"].append(name)
            continue
        train = train_cross_encoder if isinstance(c, CrossEncoderConfig) else train_biencoder
        meta = train(pairs, out / name, c)
        summary["jobs"].append(
            {
                "name": name,
                "precision": meta["precision"],
                **{k: v for k, v in meta["training"].items() if k != "losses"},
            }
        )
        print(json.dumps(summary["jobs"][-1]), flush=True)
        write()
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
