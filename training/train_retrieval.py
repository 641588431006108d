"""Fine-tune all-MiniLM-L6-v2 (Keras BERT) as a biomedical retrieval encoder; thin CLI over es_biomed.train.tf.retrieval.

The command that produced the shipped ``biomed-minilm`` (CPU, 2 cores, about 20 minutes)::

    python training/train_retrieval.py \\
        --bioasq ../shared/data/bioasq/BioASQ-train-factoid-7b.json --scifact ../shared/data/scifact \\
        --out runs/biomed-minilm --install es_biomed/models/weights/biomed-minilm \\
        --results training/results/retrieval_train.json

It writes ``runs/biomed-minilm/{tf,torch-fp32,fp16}`` (each with ``training_meta.json``), copies ``fp16`` to
``--install`` and the metadata to ``--results``. Evaluate with ``training/eval_retrieval.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from es_biomed.train.tf.retrieval import train_and_export
from es_biomed.train.tf.retrieval_config import RetrievalTrainConfig
from es_biomed.train.tf.retrieval_data import prepare_training_data

GPU_HELP = """\
GPU configuration (when a GPU is lent; not used for the shipped model): larger batches give more in-batch
negatives and mixed precision roughly doubles throughput on tensor cores:

    python training/train_retrieval.py --bioasq ... --scifact ... --out runs/biomed-minilm-gpu \\
        --batch-size 128 --epochs 3 --learning-rate 5e-5 --hard-negatives 2 --mixed-precision
"""

NOTICE = """\
biomed-minilm: all-MiniLM-L6-v2 fine-tuned for biomedical question -> passage retrieval by es-biomed.

Base model: sentence-transformers/all-MiniLM-L6-v2 (Apache License 2.0), itself from
nreimers/MiniLM-L6-H384-uncased (microsoft/MiniLM-L12-H384-uncased, MIT). This derivative is distributed under
the Apache License 2.0; the weights were changed by the fine-tuning described in training_meta.json.

Training data (used to fit the weights; none of it is redistributed here):
- BioASQ 7b factoid training set in SQuAD format (BioASQ-train-factoid-7b.json, as preprocessed by dmis-lab
  BioBERT), 80 % of its questions (split by es_biomed.corpus.bioasq.split_by_question); BioASQ data requires
  registration with BioASQ and is for research use.
- SciFact (allenai, via BEIR) train claims (qrels/train.tsv; claims CC BY 4.0) with abstracts from its corpus
  (ODC-By 1.0). SciFact test claims were never used for training or model selection.
Input file sha256 sums, the split's question-id hashes, hyper-parameters, seed and metrics are in
training_meta.json.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, epilog=GPU_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--bioasq", nargs="+", required=True, help="BioASQ SQuAD training file(s) (7b train)")
    ap.add_argument("--scifact", help="BEIR SciFact directory: adds its qrels/train.tsv pairs")
    ap.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    ap.add_argument("--install", help="copy the fp16 model directory here (replacing what is there)")
    ap.add_argument("--results", help="also write the training metadata to this JSON file")
    ap.add_argument("--dev-fraction", type=float, default=0.2)
    d = RetrievalTrainConfig()
    ap.add_argument("--base-model", default=d.base_model)
    ap.add_argument("--epochs", type=int, default=d.epochs)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--learning-rate", type=float, default=d.learning_rate)
    ap.add_argument("--weight-decay", type=float, default=d.weight_decay)
    ap.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio)
    ap.add_argument("--scale", type=float, default=d.scale)
    ap.add_argument("--query-max-length", type=int, default=d.query_max_length)
    ap.add_argument("--doc-max-length", type=int, default=d.doc_max_length)
    ap.add_argument("--hard-negatives", type=int, default=d.hard_negatives)
    ap.add_argument("--mining-depth", type=int, default=d.mining_depth)
    ap.add_argument("--mining-skip", type=int, default=d.mining_skip)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--max-steps", type=int, default=None, help="stop early (for timing runs)")
    ap.add_argument("--mixed-precision", action="store_true", help="mixed_float16 (GPU only)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    config = RetrievalTrainConfig(
        base_model=args.base_model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio,
        scale=args.scale,
        query_max_length=args.query_max_length,
        doc_max_length=args.doc_max_length,
        hard_negatives=args.hard_negatives,
        mining_depth=args.mining_depth,
        mining_skip=args.mining_skip,
        seed=args.seed,
        max_steps=args.max_steps,
        mixed_precision=args.mixed_precision,
    )
    data = prepare_training_data(args.bioasq, config, scifact_dir=args.scifact, dev_fraction=args.dev_fraction)
    print(json.dumps({k: v for k, v in data.provenance.items() if k != "inputs_sha256"}), flush=True)
    # parity texts: dev questions only (never trained on), plus a few training contexts of both data sets
    from es_biomed.corpus.bioasq import load_bioasq_split

    dev = load_bioasq_split(args.bioasq, data.dev_ids, None)
    parity = [dev.queries[q] for q in sorted(dev.queries)[:32]] + [dev.corpus[c].text for c in sorted(dev.corpus)[:32]]

    def on_step(step: int, loss: float, lr: float) -> None:
        print(f"step {step} loss {loss:.4f} lr {lr:.2e}", flush=True)

    meta = train_and_export(data, config, args.out, parity_texts=parity, notice=NOTICE, on_step=on_step)
    print(
        json.dumps(
            {"training": {k: v for k, v in meta["training"].items() if k != "losses"}, **meta.get("checks", {})}
        )
    )
    if args.install:
        dest = Path(args.install)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(Path(args.out) / "fp16", dest)
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
