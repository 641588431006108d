"""Fine-tune a span-extraction (QA) head on BioASQ 7b-train and score its held-out questions (BioASQ factoid).

The 7b-train pairs are split **by question** with :func:`es_biomed.corpus.bioasq.split_by_question` (the split
the retrieval evaluation uses; 20% of questions held out). The model trains on the train questions' pairs and is
scored on the held-out questions only: each question's candidates are pooled over all its contexts, and the
top 5 are scored with BioASQ strict accuracy, lenient accuracy and MRR. The 4b-6b test sets are never used:
about 70% of their questions also occur in 7b-train.

Example:
    flock /tmp/es-biomed-cpu.lock python training/finetune_qa.py \\
        --squad ../shared/data/bioasq/BioASQ-train-factoid-7b.json --epochs 2 --results training/results/qa_minilm.json
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
    ap.add_argument("--squad", required=True, type=Path, help="BioASQ-train-factoid-7b.json (SQuAD v1 format)")
    ap.add_argument("--model", default="all-MiniLM-L6-v2", help="registered encoder name or HF BERT directory")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--doc-stride", type=int, default=128)
    ap.add_argument("--max-query-length", type=int, default=64)
    ap.add_argument("--max-answer-length", type=int, default=30, help="longest answer, in WordPieces")
    ap.add_argument("--dev-fraction", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-steps", type=int, default=None, help="stop training early (throughput probes)")
    ap.add_argument("--results", type=Path, default=None, help="JSON file to merge the run record into")
    ap.add_argument("--name", default="bioasq-7b-heldout", help="key in --results")
    ap.add_argument(
        "--save-dir",
        type=Path,
        default=None,
        help="write the loadable reader here (fp16 BertForQuestionAnswering directory with qa_config.json, "
        "training_meta.json and NOTICE; es_biomed/models/weights/biomed-qa is the shipped biomed-qa)",
    )
    ap.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="weights of --save-dir")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from es_biomed.corpus.tasks import gold_answers, read_squad, split_questions
    from es_biomed.eval.report import merge_run_record
    from es_biomed.eval.task_metrics import BIOASQ_TOP_K, bioasq_factoid_scores
    from es_biomed.models.files import sha256_file
    from es_biomed.train.tf.bert import load_bert
    from es_biomed.train.tf.heads import TrainConfig, build_head, fit, predict, rank_answers
    from es_biomed.train.tf.task_data import encode_squad

    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed, max_steps=args.max_steps
    )
    examples = read_squad(args.squad)
    train, dev = split_questions(examples, args.dev_fraction)
    enc = {"max_length": args.max_length, "doc_stride": args.doc_stride, "max_query_length": args.max_query_length}
    bert, tokenizer = load_bert(args.model, max_length=args.max_length)
    train_feats = encode_squad(train, tokenizer, **enc)
    dev_feats = encode_squad(dev, tokenizer, **enc)
    model = build_head(bert, "span", seed=args.seed)
    report = fit(model, train_feats, config)

    t0 = time.perf_counter()
    logits = predict(model, dev_feats)
    seconds = time.perf_counter() - t0
    ranked = rank_answers(dev, dev_feats, logits, k=BIOASQ_TOP_K, max_answer_length=args.max_answer_length)
    gold = gold_answers(dev)
    metrics = bioasq_factoid_scores({q: [t for t, _ in c] for q, c in ranked.items()}, gold)
    metrics["predict_examples_per_s"] = len(dev_feats) / seconds
    record: dict[str, Any] = {
        "task": "qa",
        "model": args.model,
        "model_config": {k: bert.config.to_dict()[k] for k in ("num_hidden_layers", "hidden_size", "vocab_size")},
        "encoding": {**enc, "max_answer_length": args.max_answer_length},
        "train": config.to_dict(),
        "data": {"path": str(args.squad), "sha256": sha256_file(args.squad)},
        "split": {
            "function": "es_biomed.corpus.bioasq.split_by_question",
            "dev_fraction": args.dev_fraction,
            "train_questions": len({e.question_id for e in train}),
            "train_pairs": len(train),
            "train_features": len(train_feats),
            "dev_questions": len(gold),
            "dev_pairs": len(dev),
            "dev_features": len(dev_feats),
        },
        "train_report": report.to_dict(),
        "examples_per_s": report.examples_per_s,
        "metrics": metrics,
        "sample_predictions": {q: ranked.get(q, [])[:3] + [("gold", gold[q])] for q in sorted(gold)[:5]},
        "host": {"machine": platform.machine(), "python": platform.python_version(), "device": "CPU"},
    }
    logging.info("BioASQ 7b held-out questions: %s", metrics)
    if args.save_dir:
        record["checks"] = save_reader(model, tokenizer, args, dev)
        record["saved_to"] = str(args.save_dir)
        (args.save_dir / "training_meta.json").write_text(json.dumps(record, indent=2) + "\n")
        (args.save_dir / "NOTICE").write_text(NOTICE)
    if args.results:
        merge_run_record(args.results, args.name, record)
    return record


NOTICE = """biomed-qa: an extractive question-answering reader (span extraction, BertForQuestionAnswering layout)
fine-tuned by es-biomed from all-MiniLM-L6-v2 on BioASQ factoid questions.

Base model: sentence-transformers/all-MiniLM-L6-v2 (Apache License 2.0), itself from
nreimers/MiniLM-L6-H384-uncased (microsoft/MiniLM-L12-H384-uncased, MIT). This derivative is distributed under
the Apache License 2.0; the weights were changed by the fine-tuning described in training_meta.json (the start/end
layer qa_outputs is new). Weights are stored in float16.

Training data (used to fit the weights; none of it is redistributed here):
- BioASQ 7b factoid training set in SQuAD format (BioASQ-train-factoid-7b.json, as preprocessed by dmis-lab
  BioBERT), the 80 % of its questions that es_biomed.corpus.bioasq.split_by_question (dev_fraction 0.2) puts in
  train; BioASQ data requires registration with BioASQ and is for research use. The held-out 20 % were used only
  to score the model. The 4b-6b test sets were never used (their questions recur in 7b-train).
Input file sha256, split sizes, hyper-parameters, seed and metrics are in training_meta.json.
"""


def save_reader(model: Any, tokenizer: Any, args: argparse.Namespace, dev: list[Any]) -> dict[str, Any]:
    """Write the reader to ``--save-dir`` and measure its logits against the Keras model (fp32 and as saved)."""
    import tempfile

    from es_biomed.export.qa_reader import export_span_model, span_logits_max_abs_diff
    from es_biomed.qa.config import ReaderConfig

    cfg = ReaderConfig(args.max_length, args.doc_stride, args.max_query_length, args.max_answer_length)
    pairs = [(ex.question, ex.context) for ex in dev[:32]]
    export_span_model(model, tokenizer, args.save_dir, cfg, dtype=args.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_span_model(model, tokenizer, Path(tmp) / "fp32", cfg, dtype="float32")
        fp32_diff = span_logits_max_abs_diff(model, fp32, pairs)
    return {
        "parity_pairs": len(pairs),
        "tf_vs_torch_fp32_max_abs_logit_diff": fp32_diff,
        f"tf_vs_torch_{args.dtype}_max_abs_logit_diff": span_logits_max_abs_diff(model, args.save_dir, pairs),
        "dtype": args.dtype,
    }


if __name__ == "__main__":
    main()
