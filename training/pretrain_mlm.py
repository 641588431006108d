"""Continued MLM pretraining of a BERT on a BREATHE-style corpus; held-out MLM loss before and after.

Example (the recorded CPU run; see training/results/mlm_minilm.json)::

    flock /tmp/es-biomed-cpu.lock python training/pretrain_mlm.py --model all-MiniLM-L6-v2 \\
        --sources ../shared/data/cord19/merged_dedup_cord_uid.jsonl ../shared/data/scifact \\
                  ../shared/data/bioasq/BioASQ-train-factoid-7b.json \\
        --corpus-dir /tmp/mlm_corpus --preset cpu --max-steps 120 --time-budget 420 \\
        --results training/results/mlm_minilm.json

On a GPU: ``--preset gpu`` (batch 256, mixed float16, learning rate 1e-4) and no time budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="load_bert source: name, HF dir, Google ckpt")
    parser.add_argument("--sources", nargs="+", help="corpora to build the JSONL corpus from (any es_biomed format)")
    parser.add_argument(
        "--corpus-dir", required=True, help="train.jsonl/heldout.jsonl; built from --sources if absent"
    )
    parser.add_argument("--heldout-fraction", type=float, default=0.05)
    parser.add_argument("--preset", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--max-steps", type=int, help="default: one pass over the training sequences")
    parser.add_argument("--time-budget", type=float, help="stop training after this many seconds")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--max-seq-length", type=int)
    parser.add_argument("--whole-word", action="store_true", help="whole-word masking")
    parser.add_argument("--head-only", action="store_true", help="train only the MLM head (baseline)")
    parser.add_argument("--max-train-docs", type=int, help="use only the first N training documents")
    parser.add_argument("--max-heldout-seqs", type=int, default=256, help="held-out sequences scored")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--save-model", help="write the trained encoder (HF dir, original pooler kept) here")
    parser.add_argument("--export", help="write the trained encoder as a TF-Hub-style module here")
    parser.add_argument("--results", required=True, help="JSON file for config + metrics")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from es_biomed.export.tf_hub import export_hub_module
    from es_biomed.train.tf import load_bert, save_bert
    from es_biomed.train.tf.mlm import (
        PRESETS,
        pretrain_mlm,
        seed_everything,
        set_mixed_precision,
        transfer_encoder_weights,
    )
    from es_biomed.train.tf.mlm_data import build_mlm_corpus, encode_documents, read_jsonl_texts

    overrides = {
        "max_steps": args.max_steps,
        "time_budget_s": args.time_budget,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_seq_length": args.max_seq_length,
        "whole_word": args.whole_word or None,
        "head_only": args.head_only or None,
        "seed": args.seed,
    }
    config = dataclasses.replace(PRESETS[args.preset], **{k: v for k, v in overrides.items() if v is not None})

    corpus_dir = Path(args.corpus_dir)
    if not (corpus_dir / "train.jsonl").is_file():
        if not args.sources:
            parser.error(f"{corpus_dir} has no train.jsonl; give --sources to build it")
        build_mlm_corpus(args.sources, corpus_dir, heldout_fraction=args.heldout_fraction, seed=args.seed)
    corpus_stats = json.loads((corpus_dir / "stats.json").read_text())

    set_mixed_precision(config.mixed_precision)
    seed_everything(config.seed)  # a freshly initialised MLM head is then the same on every run
    model, tokenizer = load_bert(args.model, for_mlm=True)
    t0 = time.perf_counter()
    train_ids = encode_documents(
        tokenizer,
        read_jsonl_texts(corpus_dir / "train.jsonl", limit=args.max_train_docs),
        max_seq_length=config.max_seq_length,
    )
    heldout_ids = encode_documents(
        tokenizer, read_jsonl_texts(corpus_dir / "heldout.jsonl"), max_seq_length=config.max_seq_length
    )[: args.max_heldout_seqs]
    tokenize_s = time.perf_counter() - t0
    result = pretrain_mlm(model, tokenizer, train_ids, heldout_ids, config)

    out = {
        "model": args.model,
        "mlm_head": "from the source"
        if model.mlm_head_from_source
        else "freshly initialised (the source has no MLM head weights); output layer tied to the word embeddings",
        "config": config.to_dict(),
        "corpus": corpus_stats,
        "train_sequences_available": int(len(train_ids)),
        "tokenize_seconds": tokenize_s,
        "metrics": result.to_dict(),
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "command": "python training/pretrain_mlm.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(out, indent=2) + "\n")  # written before the (optional) saving, then updated
    if args.save_model or args.export:
        encoder, _ = load_bert(args.model)
        out["encoder_weights_copied"] = transfer_encoder_weights(model, encoder)
        if args.save_model:
            out["saved_model"] = str(save_bert(encoder, tokenizer, args.save_model))
        if args.export:
            out["exported_module"] = str(export_hub_module(encoder, tokenizer, args.export))
        results.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
