"""Build the training-pair dataset from every non-test source in ``../shared/data``.

    python training/build_dataset.py ../shared/data --out runs/dataset

writes ``runs/dataset/pairs.jsonl`` (``es-biomed-pairs/1``) and ``manifest.json`` (input sha256s, splits, counts,
mining statistics). See :mod:`es_biomed.train.data.build`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

from es_biomed.train.data.build import DatasetConfig, build_dataset


def main(argv: list[str] | None = None) -> int:
    d = DatasetConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", help="the shared data directory (../shared/data)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sources", nargs="+", default=list(d.sources))
    ap.add_argument("--kinds", nargs="+", default=list(d.kinds), choices=["supervised", "title", "ict"])
    ap.add_argument("--negatives-bm25", type=int, default=d.negatives_bm25)
    ap.add_argument("--negatives-dense", type=int, default=d.negatives_dense)
    ap.add_argument("--mining-depth", type=int, default=d.mining_depth)
    ap.add_argument("--max-ratio", type=float, default=d.max_ratio)
    ap.add_argument("--encoder", default=d.encoder, help="encoder for dense negatives ('none': BM25 only)")
    ap.add_argument("--max-self-supervised", type=int, default=None)
    ap.add_argument("--seed", type=int, default=d.seed)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = dataclasses.replace(
        d,
        sources=tuple(args.sources),
        kinds=tuple(args.kinds),
        negatives_bm25=args.negatives_bm25,
        negatives_dense=args.negatives_dense,
        mining_depth=args.mining_depth,
        max_ratio=args.max_ratio,
        encoder=None if args.encoder in (None, "none") else args.encoder,
        max_self_supervised=args.max_self_supervised,
        seed=args.seed,
    )
    manifest = build_dataset(args.data_dir, args.out, cfg, progress=lambda m: print(m, flush=True))
    print(json.dumps({k: manifest[k] for k in ("pairs", "pairs_per_source_kind", "mining", "seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
