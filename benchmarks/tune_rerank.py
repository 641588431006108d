"""Tune the BM25 field set-up and the rerank weights on SciFact *train* queries only; write presets.json.

    .venv/bin/python benchmarks/tune_rerank.py ../shared/data/scifact --index indexes/scifact [--write]

SciFact test queries never enter this script. The grid is small on purpose (a general method, not a fit
to one set); the full grid with its train NDCG@10 is written to benchmarks/results/tune_rerank.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.corpus.readers import load_beir
from es_biomed.encode import load_encoder
from es_biomed.eval.metrics import evaluate
from es_biomed.ingest import index_documents
from es_biomed.query.plan import SearchPlan, apply_rescore

TIE = 0.0005  # NDCG@10 differences below this on 809 queries are noise
PRESETS = Path(__file__).resolve().parents[1] / "es_biomed" / "query" / "presets.json"

FIELD_SETUPS = {
    "title+abstract best_fields": ({"title": 1.0, "abstract": 1.0, "body": 1.0}, "best_fields"),
    "title^2+abstract best_fields": ({"title": 2.0, "abstract": 1.0, "body": 1.0}, "best_fields"),
    "title+abstract most_fields": ({"title": 1.0, "abstract": 1.0, "body": 1.0}, "most_fields"),
    "title^0.5+abstract most_fields": ({"title": 0.5, "abstract": 1.0, "body": 1.0}, "most_fields"),
}
WINDOWS = (20, 30, 50, 100)
SCORE_MODES = ("total", "multiply")
RESCORE_WEIGHTS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0, 1000.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scifact")
    ap.add_argument("--index", required=True)
    ap.add_argument("--write", action="store_true", help="write the best setting to es_biomed/query/presets.json")
    args = ap.parse_args()

    train = load_beir(args.scifact, "train")
    enc = load_encoder()
    index_documents(train.corpus.values(), args.index, enc, show_progress=True)
    index = EmbeddedIndex(args.index)
    qids = sorted(train.queries)
    vecs = dict(zip(qids, enc.encode_queries([train.queries[q] for q in qids], batch_size=64), strict=True))

    grid = []
    best_fields = None
    for name, (fields, match_type) in FIELD_SETUPS.items():
        base = SearchPlan("", fields=fields, match_type=match_type, k=100)
        first = {q: [(h.doc_id, h.score) for h in index.bm25(base.replace(query=train.queries[q]), 100)] for q in qids}
        bm25 = evaluate(train.qrels, {q: dict(v) for q, v in first.items()}, ["NDCG@10"])["NDCG@10"]
        grid.append({"fields": name, "mode": "bm25", "NDCG@10": bm25})
        print(f"{name:32s} bm25 {bm25:.4f}")
        if best_fields is None or bm25 > best_fields[1]:
            best_fields = (name, bm25, first)
    name, _, first = best_fields
    fields, match_type = FIELD_SETUPS[name]
    cos = {q: index.vector_scores(vecs[q], [d for d, _ in first[q]]) for q in qids}
    scored = []
    for window, mode, rw in itertools.product(WINDOWS, SCORE_MODES, RESCORE_WEIGHTS):
        plan = SearchPlan(
            "",
            fields=fields,
            match_type=match_type,
            window_size=window,
            score_mode=mode,
            rescore_query_weight=rw,
            k=100,
        )
        run = {q: dict(apply_rescore(first[q], {d: c + 1.0 for d, c in cos[q].items()}, plan)[:100]) for q in qids}
        ndcg = evaluate(train.qrels, run, ["NDCG@10"])["NDCG@10"]
        grid.append(
            {
                "fields": name,
                "mode": "rerank",
                "window_size": window,
                "score_mode": mode,
                "rescore_query_weight": rw,
                "NDCG@10": ndcg,
            }
        )
        scored.append((ndcg, window, mode, rw))
    # Within TIE of the best, prefer the smaller window (cheaper), then the smaller weight.
    top = max(s[0] for s in scored)
    ndcg, window, mode, rw = min((s for s in scored if s[0] >= top - TIE), key=lambda s: (s[1], s[3]))
    print(f"best rerank on train: {name}, window {window}, {mode}, rescore_query_weight {rw}: NDCG@10 {ndcg:.4f}")
    out = Path(__file__).with_name("results") / "tune_rerank.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"tuned_on": f"SciFact train ({len(qids)} queries)", "grid": grid}, indent=1) + "\n")
    if args.write:
        preset = {
            "default": {
                "_tuned_on": f"SciFact train ({len(qids)} queries), benchmarks/tune_rerank.py; train NDCG@10 {ndcg:.4f}",
                "fields": fields,
                "match_type": match_type,
                "window_size": window,
                "score_mode": mode,
                "query_weight": 1.0,
                "rescore_query_weight": rw,
            }
        }
        PRESETS.write_text(json.dumps(preset, indent=2) + "\n")
        print(f"wrote {PRESETS}")


if __name__ == "__main__":
    main()
