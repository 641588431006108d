"""Fine-tune a token-classification (BIO NER) head on the Keras BERT and score entity-level P/R/F1.

Trains on ``<data-dir>/train.tsv`` and evaluates on ``devel.tsv`` and ``test.tsv`` (BioBERT layout). The run
record (model config, hyper-parameters, seed, data SHA-256s, throughput, metrics) is merged into ``--results``
under the dataset's name. Weights are saved only with ``--save-dir`` (never commit them).

Example:
    flock /tmp/es-biomed-cpu.lock python training/finetune_ner.py \\
        --data-dir ../shared/data/ner/NCBI-disease --epochs 1 --results training/results/ner_minilm.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--data-dir", required=True, type=Path, help="folder with train.tsv, devel.tsv, test.tsv")
    ap.add_argument("--model", default="all-MiniLM-L6-v2", help="registered encoder name or HF BERT directory")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-steps", type=int, default=None, help="stop training early (throughput probes)")
    ap.add_argument("--eval-splits", default="devel,test", help="comma-separated splits to score ('' for none)")
    ap.add_argument("--results", type=Path, default=None, help="JSON file to merge the run record into")
    ap.add_argument("--name", default=None, help="key in --results (default: the data folder's name)")
    ap.add_argument("--save-dir", type=Path, default=None, help="save head weights and the record here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from es_biomed.corpus.tasks import BIO_TAGS, read_ner_tsv
    from es_biomed.eval.report import merge_run_record
    from es_biomed.eval.task_metrics import ner_scores
    from es_biomed.models.files import sha256_file
    from es_biomed.train.tf.bert import load_bert
    from es_biomed.train.tf.heads import TrainConfig, build_head, fit, predict
    from es_biomed.train.tf.task_data import decode_ner, encode_ner

    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed)
    config = TrainConfig(**{**config.to_dict(), "max_steps": args.max_steps})
    bert, tokenizer = load_bert(args.model, max_length=args.max_length)
    train_path = args.data_dir / "train.tsv"
    train = read_ner_tsv(train_path)
    train_feats = encode_ner(train, tokenizer, args.max_length, BIO_TAGS)
    model = build_head(bert, "token", num_labels=len(BIO_TAGS), seed=args.seed)
    report = fit(model, train_feats, config)

    record: dict[str, Any] = {
        "task": "ner",
        "model": args.model,
        "model_config": {k: bert.config.to_dict()[k] for k in ("num_hidden_layers", "hidden_size", "vocab_size")},
        "max_length": args.max_length,
        "train": config.to_dict(),
        "tags": list(BIO_TAGS),
        "data": {"train": {"path": str(train_path), "sha256": sha256_file(train_path), "sentences": len(train)}},
        "train_features": len(train_feats),
        "train_report": report.to_dict(),
        "examples_per_s": report.examples_per_s,
        "metrics": {},
        "host": {"machine": platform.machine(), "python": platform.python_version(), "device": "CPU"},
    }
    for split in [s for s in args.eval_splits.split(",") if s]:
        path = args.data_dir / f"{split}.tsv"
        sents = read_ner_tsv(path)
        feats = encode_ner(sents, tokenizer, args.max_length, BIO_TAGS)
        t0 = time.perf_counter()
        logits = predict(model, feats)
        seconds = time.perf_counter() - t0
        pred = decode_ner(sents, feats, [lg.argmax(-1) for lg in logits], BIO_TAGS)
        record["data"][split] = {"path": str(path), "sha256": sha256_file(path), "sentences": len(sents)}
        record["metrics"][split] = {
            **ner_scores([s.tags for s in sents], pred),
            "predict_examples_per_s": len(feats) / seconds,
        }
        logging.info("%s %s: %s", args.data_dir.name, split, record["metrics"][split])

    if args.save_dir:
        args.save_dir.mkdir(parents=True, exist_ok=True)
        model.save_weights(str(args.save_dir / "weights.h5"))
        (args.save_dir / "run.json").write_text(json.dumps(record, indent=2) + "\n")
        bert.config.to_json_file(str(args.save_dir / "bert_config.json"))
    if args.results:
        merge_run_record(args.results, args.name or args.data_dir.name, record)
    return record


if __name__ == "__main__":
    main()
