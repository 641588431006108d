"""The ANN graph against the exact scan on a real set (issue 23): SciFact test, dense and hybrid.

    .venv/bin/python benchmarks/ann_quality.py [--index /tmp/ix-scifact-ann] [--dtype i8] [--expansion-search 96]
        [--oversample 4] [--out benchmarks/results/ann_quality.json]

Indexes the SciFact corpus with the default encoder (once; unchanged documents are skipped), builds the graph with
the given settings (``es-biomed ann build``), then runs the 300 test claims through the Searcher twice, once with
``vector_search="ann"`` and once exact: dense recall@10 of the graph against the exact top 10, and NDCG@10 /
Recall@100 of ``dense`` and ``hybrid`` both ways (BEIR's metrics, es_biomed.eval).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS_DIR, machine  # noqa: E402


def main() -> int:
    os.environ.setdefault("USE_TF", "0")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--index", default="/tmp/ix-scifact-ann")
    ap.add_argument("--dtype", default="i8")
    ap.add_argument("--connectivity", type=int, default=16)
    ap.add_argument("--expansion-add", type=int, default=128)
    ap.add_argument("--expansion-search", type=int, default=256)
    ap.add_argument("--oversample", type=int, default=4)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "ann_quality.json")
    args = ap.parse_args()

    import numpy as np

    from es_biomed.backends.embedded.ann import AnnSettings
    from es_biomed.backends.embedded.index import EmbeddedIndex
    from es_biomed.backends.embedded.maintenance import build_ann
    from es_biomed.corpus import load_beir
    from es_biomed.encode import load_encoder
    from es_biomed.eval.metrics import average, per_query
    from es_biomed.eval.protocols import ensure_index, run_modes
    from es_biomed.query.presets import default_plan

    ds = load_beir(args.shared / "scifact", split="test")
    enc = load_encoder()
    ensure_index(ds, args.index, enc, show_progress=False)
    settings = AnnSettings(
        dtype=args.dtype,
        connectivity=args.connectivity,
        expansion_add=args.expansion_add,
        expansion_search=args.expansion_search,
        oversample=args.oversample,
    )
    built = build_ann(args.index, settings)
    depth = 100
    plans = {
        "dense": default_plan(mode="dense", k=depth),
        "hybrid": default_plan(mode="hybrid", k=depth, window_size=depth),
    }
    metrics = ("NDCG@10", "Recall@100")
    out: dict = {"settings": settings.to_dict(), "graph": {k: built.get(k) for k in ("rows", "bytes", "add_seconds")}}
    runs = {}
    for how in ("exact", "ann"):
        idx = EmbeddedIndex(args.index, vector_search=how)  # type: ignore[arg-type]
        runs[how] = run_modes(idx, ds, enc, plans)
        out[how] = {name: average(per_query(ds.qrels, run, metrics), metrics) for name, run in runs[how].items()}
    rec = []
    for qid in ds.queries:
        a = sorted(runs["ann"]["dense"][qid].items(), key=lambda t: -t[1])[:10]
        e = sorted(runs["exact"]["dense"][qid].items(), key=lambda t: -t[1])[:10]
        rec.append(len({d for d, _ in a} & {d for d, _ in e}) / 10)
    out["dense_recall_at_10_vs_exact"] = round(float(np.mean(rec)), 4)
    out["delta_ndcg10"] = {m: round(out["ann"][m]["NDCG@10"] - out["exact"][m]["NDCG@10"], 4) for m in plans}
    out["documents"] = EmbeddedIndex(args.index).count()
    out["command"] = " ".join(sys.argv)
    out["machine"] = machine()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
