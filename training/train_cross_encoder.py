"""Fine-tune a cross-encoder reranker from all-MiniLM-L6-v2 on the judged pairs and their BM25 negatives.

    python training/train_cross_encoder.py --pairs runs/dataset/pairs.jsonl --out runs/ce/minilm --seed 1

writes ``runs/ce/minilm/{fp32,fp16}`` (``BertForSequenceClassification``, one logit) with ``training_meta.json``.
See :mod:`es_biomed.train.pt.cross_encoder`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from es_biomed.train.pt.common import config_from_dict
from es_biomed.train.pt.cross_encoder import CrossEncoderConfig, train_cross_encoder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", help="JSON file of CrossEncoderConfig fields (flags given override it)")
    ap.add_argument("--base-model")
    ap.add_argument("--max-pairs", type=int, help="judged pairs to use (default: all)")
    ap.add_argument("--seed", type=int)
    for name in ("negatives", "max_steps", "batch_size", "max_length"):
        ap.add_argument("--" + name.replace("_", "-"), type=int)
    for name in ("epochs", "learning_rate", "warmup_ratio"):
        ap.add_argument("--" + name.replace("_", "-"), type=float)
    ap.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"])
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    base = json.loads(Path(args.config).read_text()) if args.config else {}
    cfg = config_from_dict(base, CrossEncoderConfig, args.config or "config")
    overrides = {
        k: getattr(args, k)
        for k in ("base_model", "seed", "negatives", "max_steps", "batch_size", "max_length", "epochs")
        + ("learning_rate", "warmup_ratio", "precision")
        if getattr(args, k) is not None
    }
    if args.max_pairs is not None:
        overrides["budget"] = {"supervised": args.max_pairs}
    cfg = dataclasses.replace(cfg, **overrides)
    meta = train_cross_encoder(args.pairs, args.out, cfg)
    print(json.dumps({k: v for k, v in meta["training"].items() if k != "losses"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
