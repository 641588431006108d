"""Evaluate encoders in the rerank setting (BM25 top-k + cosine, ``presets.default_plan()``, one plan for all).

* BioASQ-dev MRR@10: the BioMedBERT paper's protocol on the held-out questions of 7b-train
  (``split_by_question``, dev = 20 %), corpus = contexts of the dev questions, Jaccard > 0.30 pairs removed,
  rerank windows 20, 30, 40, 50 (``evaluate_bioasq_questions``).
* SciFact test NDCG@10 (``evaluate_beir``, split test).
* SciFact dev NDCG@10 (``--scifact-dev``): the query-disjoint 20 % of SciFact *train* claims that the training
  data holds out (:func:`es_biomed.train.data.sources.scifact_split`), over the same corpus and index as test.
  With ``--no-scifact-test`` only the dev splits are read: that is how models are selected.

``--fast`` embeds with the model's bf16 OpenVINO export (made once into the ONNX cache, same identity as the
torch model when within the bf16 tolerance), about three times faster than torch on this machine.

The command behind ``training/results/retrieval_eval.json``::

    python training/eval_retrieval.py --models all-MiniLM-L6-v2 biomed-minilm runs/biomed-minilm/torch-fp32 \\
        --bioasq ../shared/data/bioasq/BioASQ-train-factoid-7b.json --scifact ../shared/data/scifact \\
        --scifact-models all-MiniLM-L6-v2 biomed-minilm --compare biomed-minilm runs/biomed-minilm/torch-fp32 \\
        --index-root runs/eval-indexes --out training/results/retrieval_eval.json \\
        --update-meta es_biomed/models/weights/biomed-minilm=biomed-minilm

``--update-meta DIR=MODEL`` writes MODEL's metrics into ``DIR/training_meta.json`` (beside the weights).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from es_biomed.corpus.bioasq import DEFAULT_DEV_FRACTION, load_bioasq, load_bioasq_split, split_by_question
from es_biomed.encode import load_encoder
from es_biomed.eval.metrics import evaluate
from es_biomed.eval.protocols import BEIR_RUNS, ensure_index, evaluate_beir, evaluate_bioasq_questions, run_modes
from es_biomed.query.presets import default_plan
from es_biomed.train.data.provenance import update_training_meta


def fast_encoder(name_or_path: str) -> Any:
    """The bf16 variant of a registered model or of a model directory when it keeps the identity, else torch."""
    from es_biomed.encode.loading import load_document_encoder
    from es_biomed.models.catalog import entries

    if name_or_path in entries("encoder"):
        return load_document_encoder(name_or_path)
    from es_biomed.encode.onnx_backend import OnnxEncoder
    from es_biomed.encode.onnx_build import ensure_exported, source_fingerprint
    from es_biomed.encode.onnx_format import MANIFEST_FILENAME

    src = Path(name_or_path)
    export_dir = ensure_exported(f"{src.parent.name}-{src.name}", src)
    record = json.loads((export_dir / MANIFEST_FILENAME).read_text()).get("variants", {}).get("bf16", {})
    if record.get("fingerprint") == source_fingerprint(src):
        return OnnxEncoder(export_dir, name=str(src), variant="bf16")
    return load_encoder(name_or_path)


def evaluate_scifact_dev(directory: str, index_path: Path, encoder: Any, plan: Any) -> dict[str, Any]:
    """NDCG@10 / Recall@100 / MRR@10 of the four runs on the SciFact dev claims (held out of training)."""
    from es_biomed.corpus.readers import load_beir
    from es_biomed.corpus.types import RetrievalSet
    from es_biomed.train.data.sources import scifact_split

    train = load_beir(directory, "train")
    _, dev_ids = scifact_split(directory)
    ds = RetrievalSet(
        corpus=train.corpus,
        queries={q: train.queries[q] for q in dev_ids},
        qrels={q: train.qrels[q] for q in dev_ids if q in train.qrels},
    )
    index = ensure_index(ds, index_path, encoder, False)
    depth = max(100, plan.k)
    plans = {
        name: plan.replace(
            mode=mode, k=depth, window_size=max(plan.window_size, depth) if mode == "hybrid" else plan.window_size
        )
        for name, mode in BEIR_RUNS.items()
    }
    runs = run_modes(index, ds, encoder, plans)
    metrics = ("NDCG@10", "Recall@100", "MRR@10")
    return {
        "runs": {name: evaluate(ds.qrels, run, metrics) for name, run in runs.items()},
        "config": {"queries": len(ds.queries), "documents": index.count(), "split": "train (dev claims)"},
    }


def _slug(encoder: Any) -> str:
    return f"{Path(encoder.name).name}-{encoder.fingerprint}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, help="encoder names or model directories")
    ap.add_argument("--bioasq", nargs="+", required=True, help="BioASQ 7b-train SQuAD file(s)")
    ap.add_argument("--scifact", help="BEIR SciFact directory (evaluates its test split)")
    ap.add_argument("--scifact-models", nargs="*", help="subset of --models to run on SciFact (default: all)")
    ap.add_argument("--scifact-dev", action="store_true", help="also evaluate the SciFact dev claims")
    ap.add_argument("--no-scifact-test", action="store_true", help="model selection: dev splits only")
    ap.add_argument("--fast", action="store_true", help="embed with the bf16 export (same identity)")
    ap.add_argument("--dev-fraction", type=float, default=DEFAULT_DEV_FRACTION)
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), help="report BioASQ-dev rank agreement of two models")
    ap.add_argument("--index-root", default="runs/eval-indexes", help="embedded indices are built here")
    ap.add_argument("--out", required=True, help="results JSON")
    ap.add_argument("--update-meta", nargs="*", default=[], metavar="DIR=MODEL")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    plan = default_plan()
    root = Path(args.index_root)
    _, dev_ids = split_by_question(load_bioasq(args.bioasq, None).queries, args.dev_fraction)
    results: dict[str, Any] = {}
    encoders = {}
    for name in args.models:
        enc = fast_encoder(name) if args.fast else load_encoder(name)
        encoders[name] = enc
        t0 = time.perf_counter()
        res: dict[str, Any] = {"encoder": enc.info.to_dict()}
        res["bioasq_dev"] = evaluate_bioasq_questions(
            args.bioasq, dev_ids, root / f"bioasq-dev-{_slug(enc)}", enc, plan
        )
        if args.scifact and (args.scifact_models is None or name in args.scifact_models):
            sci_index = root / f"scifact-test-{_slug(enc)}"  # the corpus is shared by all splits
            if args.scifact_dev:
                res["scifact_dev"] = evaluate_scifact_dev(args.scifact, sci_index, enc, plan)
            if not args.no_scifact_test:
                res["scifact_test"] = evaluate_beir(args.scifact, sci_index, enc, plan, "test")
        res["seconds"] = round(time.perf_counter() - t0, 1)
        results[name] = res
        print(json.dumps({name: summary(res)}), flush=True)
    out: dict[str, Any] = {"summary": {n: summary(r) for n, r in results.items()}, "results": results}
    if args.compare:
        out["rank_agreement"] = rank_agreement(args.bioasq, dev_ids, root, [encoders[m] for m in args.compare], plan)
        out["rank_agreement"]["models"] = list(args.compare)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(json.dumps({"summary": out["summary"], "rank_agreement": out.get("rank_agreement")}, indent=2))
    for item in args.update_meta:
        directory, _, model = item.partition("=")
        update_training_meta(
            directory, metrics={"eval": out["summary"][model], "eval_command": "training/eval_retrieval.py"}
        )
    return 0


def summary(res: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers: BioASQ-dev MRR@10 per window (BM25 and rerank), SciFact test NDCG@10."""
    table = res["bioasq_dev"]["table"]
    out: dict[str, Any] = {
        "bioasq_dev_mrr10_bm25": table["bm25"]["20"]["MRR@10"],
        "bioasq_dev_mrr10_rerank": {w: v["MRR@10"] for w, v in table["bm25+rerank"].items()},
        "bioasq_dev_queries": res["bioasq_dev"]["config"]["queries"],
    }
    for split in ("scifact_dev", "scifact_test"):
        if split in res:
            runs = res[split]["runs"]
            out[f"{split}_ndcg10"] = {m: runs[m]["NDCG@10"] for m in runs}
    return out


def rank_agreement(files: list[str], dev_ids: list[str], root: Path, encoders: list[Any], plan: Any) -> dict[str, Any]:
    """Share of BioASQ-dev questions whose rerank top 10 (window 30) is identical for two encoders."""
    ds = load_bioasq_split(files, dev_ids)
    runs = []
    for enc in encoders:
        index = ensure_index(ds, root / f"bioasq-dev-{_slug(enc)}", enc, False)
        run = run_modes(index, ds, enc, {"rerank": plan.replace(mode="rerank", window_size=30, k=10)})["rerank"]
        runs.append({q: [d for d, _ in sorted(h.items(), key=lambda x: -x[1])] for q, h in run.items()})
    same = sum(runs[0][q] == runs[1][q] for q in runs[0])
    return {"queries": len(runs[0]), "identical_top10": same, "share": same / len(runs[0])}


if __name__ == "__main__":
    sys.exit(main())
