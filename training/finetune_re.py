"""Fine-tune a binary sequence-classification (RE) head on the Keras BERT over the BioBERT RE folds.

For each fold ``<data-dir>/<k>/`` it trains a fresh model on ``train.tsv`` and scores ``test.tsv`` (precision,
recall and F1 of the positive class), then reports the mean and standard deviation over the folds run. The run
record (model config, hyper-parameters, seed, per-fold data SHA-256s, throughput, metrics) is merged into
``--results`` under the dataset's name. Weights are never saved (ten folds of a BERT are not worth keeping).

Example:
    flock /tmp/es-biomed-cpu.lock python training/finetune_re.py \\
        --data-dir ../shared/data/re/euadr --folds 1-10 --results training/results/re_minilm.json
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time
from pathlib import Path
from typing import Any


def parse_folds(spec: str) -> list[int]:
    """``"1-3,7"`` -> ``[1, 2, 3, 7]``."""
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--data-dir", required=True, type=Path, help="folder with fold folders 1..10")
    ap.add_argument("--folds", default="1-10", help="folds to run, e.g. '1-10' or '1,3,5'")
    ap.add_argument("--model", default="all-MiniLM-L6-v2", help="registered encoder name or HF BERT directory")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-steps", type=int, default=None, help="stop training early (throughput probes)")
    ap.add_argument("--results", type=Path, default=None, help="JSON file to merge the run record into")
    ap.add_argument("--name", default=None, help="key in --results (default: the data folder's name)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from es_biomed.corpus.tasks import read_re_tsv
    from es_biomed.eval.report import merge_run_record
    from es_biomed.eval.task_metrics import re_scores
    from es_biomed.models.files import sha256_file
    from es_biomed.train.tf.bert import load_bert
    from es_biomed.train.tf.heads import TrainConfig, build_head, fit, predict
    from es_biomed.train.tf.task_data import encode_re

    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed, max_steps=args.max_steps
    )
    folds: dict[str, Any] = {}
    bert, tokenizer = load_bert(args.model, max_length=args.max_length)
    pretrained = bert.get_weights()
    for k in parse_folds(args.folds):
        fold_dir = args.data_dir / str(k)
        train_path, test_path = fold_dir / "train.tsv", fold_dir / "test.tsv"
        bert.set_weights(pretrained)  # every fold starts from the pre-trained weights
        train, test = read_re_tsv(train_path), read_re_tsv(test_path)
        train_feats, test_feats = (
            encode_re(train, tokenizer, args.max_length),
            encode_re(test, tokenizer, args.max_length),
        )
        model = build_head(bert, "sequence", num_labels=2, seed=args.seed)
        report = fit(model, train_feats, config)
        t0 = time.perf_counter()
        logits = predict(model, test_feats)
        seconds = time.perf_counter() - t0
        scores = re_scores([e.label for e in test], [int(lg.argmax()) for lg in logits])
        folds[str(k)] = {
            "data": {
                "train": {"path": str(train_path), "sha256": sha256_file(train_path), "examples": len(train)},
                "test": {"path": str(test_path), "sha256": sha256_file(test_path), "examples": len(test)},
            },
            "truncated": {"train": sum(train_feats.meta["truncated"]), "test": sum(test_feats.meta["truncated"])},
            "train_report": report.to_dict(),
            "examples_per_s": report.examples_per_s,
            "predict_examples_per_s": len(test_feats) / seconds,
            "metrics": scores,
        }
        logging.info("%s fold %d: %s (%.1f ex/s)", args.data_dir.name, k, scores, report.examples_per_s)

    summary = {
        m: {
            "mean": statistics.fmean(f["metrics"][m] for f in folds.values()),
            "std": statistics.stdev([f["metrics"][m] for f in folds.values()]) if len(folds) > 1 else 0.0,
        }
        for m in ("precision", "recall", "f1", "accuracy")
    }
    record: dict[str, Any] = {
        "task": "re",
        "model": args.model,
        "model_config": {k: bert.config.to_dict()[k] for k in ("num_hidden_layers", "hidden_size", "vocab_size")},
        "max_length": args.max_length,
        "train": config.to_dict(),
        "folds_run": sorted(int(k) for k in folds),
        "summary": summary,
        "examples_per_s": statistics.fmean(f["examples_per_s"] for f in folds.values()),
        "folds": folds,
        "host": {"machine": platform.machine(), "python": platform.python_version(), "device": "CPU"},
    }
    logging.info("%s summary over folds %s: %s", args.data_dir.name, record["folds_run"], summary)
    if args.results:
        merge_run_record(args.results, args.name or args.data_dir.name, record)
    return record


if __name__ == "__main__":
    main()
