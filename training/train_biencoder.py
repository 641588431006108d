"""Fine-tune a bi-encoder (InfoNCE, in-batch + mined hard negatives) on a pair file, one run per seed.

    python training/train_biencoder.py --pairs runs/dataset/pairs.jsonl --out runs/bi/minilm \\
        --base-model all-MiniLM-L6-v2 --seeds 1 2 3 --budget supervised=all title=1000 ict=1000

writes ``runs/bi/minilm/seed-N/{fp32,fp16}`` (sentence-transformers dirs, each with ``training_meta.json``) and
``runs/bi/minilm/runs.json``. The configuration can also come from a JSON file (``--config``), as the GPU
script does. See :mod:`es_biomed.train.pt.biencoder`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from es_biomed.train.pt.biencoder import BiEncoderConfig, config_from_dict, train_biencoder


def parse_budget(items: list[str]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for item in items:
        kind, sep, n = item.partition("=")
        if not sep or kind not in ("supervised", "title", "ict"):
            raise SystemExit(f"--budget {item!r}: expected KIND=N or KIND=all with KIND supervised, title or ict")
        out[kind] = None if n == "all" else int(n)
    return out


def main(argv: list[str] | None = None) -> int:
    d = BiEncoderConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", required=True, help="pair file from training/build_dataset.py")
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", help="JSON file of BiEncoderConfig fields (command-line flags given override it)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[d.seed])
    ap.add_argument("--base-model")
    ap.add_argument("--budget", nargs="+", help="KIND=N|all for supervised, title, ict")
    for name in ("negatives", "max_steps", "batch_size", "max_seq_length"):
        ap.add_argument("--" + name.replace("_", "-"), type=int)
    for name in ("epochs", "learning_rate", "warmup_ratio", "scale"):
        ap.add_argument("--" + name.replace("_", "-"), type=float)
    ap.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"])
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    base = json.loads(Path(args.config).read_text()) if args.config else {}
    cfg = config_from_dict(base, BiEncoderConfig, args.config or "config")
    overrides = {
        k: getattr(args, k)
        for k in ("base_model", "negatives", "max_steps", "batch_size", "max_seq_length", "epochs", "learning_rate")
        + ("warmup_ratio", "scale", "precision")
        if getattr(args, k) is not None
    }
    if args.budget:
        overrides["budget"] = parse_budget(args.budget)
    cfg = dataclasses.replace(cfg, **overrides)
    out = Path(args.out)
    runs = {}
    for seed in args.seeds:
        meta = train_biencoder(args.pairs, out / f"seed-{seed}", dataclasses.replace(cfg, seed=seed))
        runs[str(seed)] = {k: v for k, v in meta["training"].items() if k != "losses"}
        print(json.dumps({"seed": seed, **runs[str(seed)]}), flush=True)
    (out / "runs.json").write_text(json.dumps({"config": dataclasses.asdict(cfg), "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
