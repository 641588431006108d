"""Report (not tune) BM25 NDCG@10 of each field set-up of tune_rerank.py on a BEIR split.

    .venv/bin/python benchmarks/bm25_fields.py ../shared/data/scifact --index indexes/scifact --split test

The default set-up was chosen on SciFact train (tune_rerank.py); this only shows how the others compare.
"""

from __future__ import annotations

import argparse

from tune_rerank import FIELD_SETUPS

from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.corpus.readers import load_beir
from es_biomed.eval.metrics import evaluate
from es_biomed.query.plan import SearchPlan


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("beir")
    ap.add_argument("--index", required=True)
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    ds = load_beir(args.beir, args.split)
    index = EmbeddedIndex(args.index)
    for name, (fields, match_type) in FIELD_SETUPS.items():
        plan = SearchPlan("", fields=fields, match_type=match_type, mode="bm25", k=100)
        run = {q: {h.doc_id: h.score for h in index.bm25(plan.replace(query=t), 100)} for q, t in ds.queries.items()}
        m = evaluate(ds.qrels, run, ["NDCG@10", "Recall@100"])
        print(f"| {name} | {m['NDCG@10']:.4f} | {m['Recall@100']:.4f} |")


if __name__ == "__main__":
    main()
