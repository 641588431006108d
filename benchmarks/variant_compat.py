"""Index compatibility of two encoder variants: build with one, query with the other, against each alone.

For SciFact test (NDCG@10) and the BioASQ 7b dev split (MRR@10, question-disjoint, windows 20-50), every pair
(document encoder, query encoder) of ``--a`` and ``--b`` is scored: A/A, B/B, A-built/B-queried and B-built/A-queried.
Each corpus is embedded once per encoder (``CachedEncoder``), so the cross runs reuse the same document vectors.
Variants are index-compatible when every cross run is within 0.003 of A/A (the issue's quality gate).

.venv/bin/python benchmarks/variant_compat.py --a all-MiniLM-L6-v2-onnx --b all-MiniLM-L6-v2-bf16
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from _common import save

from es_biomed.corpus.bioasq import load_bioasq, split_by_question
from es_biomed.encode import load_encoder
from es_biomed.encode.base import Encoder
from es_biomed.encode.memo import CachedEncoder
from es_biomed.eval.protocols import evaluate_beir, evaluate_bioasq_questions
from es_biomed.query.presets import default_plan

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class Crossed(Encoder):
    """Documents through ``docs``, queries through ``queries``; the identity of ``docs`` (the index's)."""

    def __init__(self, docs: Encoder, queries: Encoder) -> None:
        self.docs, self.queries = docs, queries
        self.name, self.dims, self.max_length, self.pooling = docs.name, docs.dims, docs.max_length, docs.pooling
        self.query_prefix, self.document_prefix = docs.query_prefix, docs.document_prefix

    @property
    def fingerprint(self) -> str:
        return self.docs.fingerprint

    def _embed_batch(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - the two methods below are used
        raise NotImplementedError

    def encode_documents(self, docs: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self.docs.encode_documents(docs, batch_size, show_progress)

    def encode_queries(self, queries: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self.queries.encode_queries(queries, batch_size, show_progress)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--a", default="all-MiniLM-L6-v2-onnx", help="reference encoder")
    ap.add_argument("--b", default="all-MiniLM-L6-v2-bf16", help="candidate variant")
    ap.add_argument("--scifact", default=str(DATA / "scifact"))
    ap.add_argument("--bioasq", default=str(DATA / "bioasq" / "BioASQ-train-factoid-7b.json"))
    ap.add_argument("--name", default="variant_compat")
    args = ap.parse_args()
    encoders = {"A": CachedEncoder(load_encoder(args.a)), "B": CachedEncoder(load_encoder(args.b))}
    plan = default_plan()
    _, dev_ids = split_by_question(load_bioasq([args.bioasq], None).queries, 0.2)
    rows = []
    root = Path(tempfile.mkdtemp(prefix="variant-compat-"))
    for d, q in itertools.product("AB", repeat=2):
        enc = Crossed(encoders[d], encoders[q])
        t0 = time.perf_counter()
        sf = evaluate_beir(args.scifact, root / f"scifact-{d}{q}", enc, plan, "test")
        bq = evaluate_bioasq_questions([args.bioasq], dev_ids, root / f"bioasq-{d}{q}", enc, plan)
        row = {
            "documents": encoders[d].name,
            "queries": encoders[q].name,
            "scifact_ndcg10": {m: sf["runs"][m]["NDCG@10"] for m in ("bm25+rerank", "dense", "hybrid")},
            "bioasq_dev_mrr10": {w: v["MRR@10"] for w, v in bq["table"]["bm25+rerank"].items()},
            "seconds": round(time.perf_counter() - t0, 1),
        }
        rows.append(row)
        print(row, flush=True)
    ref = rows[0]
    worst = (
        min(min(r["scifact_ndcg10"][m] - ref["scifact_ndcg10"][m] for m in ref["scifact_ndcg10"]) for r in rows[1:]),
        min(
            min(r["bioasq_dev_mrr10"][w] - ref["bioasq_dev_mrr10"][w] for w in ref["bioasq_dev_mrr10"])
            for r in rows[1:]
        ),
    )
    print(
        f"largest drop against {args.a}/{args.a}: SciFact NDCG@10 {worst[0]:+.4f}, BioASQ dev MRR@10 {worst[1]:+.4f}"
    )
    save(args.name, {"a": args.a, "b": args.b, "rows": rows, "worst_drop": {"scifact": worst[0], "bioasq": worst[1]}})


if __name__ == "__main__":
    main()
