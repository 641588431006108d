"""Search latency at 10k real documents: SciFact (5,183) + CORD-19 sample (3,303) + BioASQ 7b contexts, cut to 10,000.

    .venv/bin/python benchmarks/bench_search.py [--shared ../shared/data] [--index indexes/bench10k] [--docs 10000]

Latency is per query, after the query is encoded (encoding is reported on its own line); p50 / p95 in ms.
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

import numpy as np
from _common import Timer, peak_rss_mb, save

from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.corpus import iter_documents, load_bioasq, read_queries
from es_biomed.encode import load_encoder
from es_biomed.ingest import index_documents
from es_biomed.query.plan import SearchPlan
from es_biomed.query.presets import default_plan
from es_biomed.search import Searcher


def corpus(shared: Path, n: int):
    scifact = iter_documents(shared / "scifact", "beir")
    cord = iter_documents(shared / "cord19" / "merged_dedup_cord_uid.jsonl", "beir")
    bioasq = load_bioasq([shared / "bioasq" / "BioASQ-train-factoid-7b.json"]).corpus.values()
    return itertools.islice(itertools.chain(scifact, cord, bioasq), n)


def latency(searcher: Searcher, plan: SearchPlan, queries: list[str], vecs: np.ndarray) -> dict[str, float]:
    """p50 / p95 (ms) and QPS of ``plan`` over ``queries``, whose vectors are already encoded; 20 warm-up queries.
    Through the Searcher (the path every caller takes), without the query encoding."""
    for q, v in zip(queries[:20], vecs[:20], strict=True):
        searcher.execute(plan.replace(query=q), v)
    lat = []
    for q, v in zip(queries, vecs, strict=True):
        with Timer() as t:
            searcher.execute(plan.replace(query=q), v)
        lat.append(t.seconds * 1000)
    return {
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p95_ms": round(float(np.percentile(lat, 95)), 3),
        "qps": round(1000 / float(np.mean(lat)), 1),
    }


def main() -> None:
    os.environ.setdefault("USE_TF", "0")  # as the CLI: keep transformers from importing TensorFlow
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--index", default="indexes/bench10k")
    ap.add_argument("--docs", type=int, default=10_000)
    args = ap.parse_args()
    shared = Path(args.shared)
    enc = load_encoder()
    with Timer() as t_index:
        report = index_documents(corpus(shared, args.docs), args.index, enc, show_progress=True)
    index = EmbeddedIndex(args.index)
    queries = list(read_queries(shared / "scifact" / "queries.jsonl").values())[:300]
    with Timer() as t_enc:
        vecs = enc.encode_queries(queries, batch_size=64)
    results = {
        "documents": index.count(),
        "indexing": {"written": report.written, "seconds": round(t_index.seconds, 1)},
        "query_encoding_ms_per_query_batched": round(1000 * t_enc.seconds / len(queries), 2),
    }
    base = default_plan(k=10)
    for mode in ("bm25", "rerank", "dense", "hybrid"):
        results[mode] = latency(Searcher(index, enc), base.replace(mode=mode), queries, vecs)
        print(mode, results[mode])
    with Timer() as t_single:
        for q in queries[:50]:
            enc.encode_queries([q])
    results["query_encoding_ms_single"] = round(1000 * t_single.seconds / 50, 2)
    results["window_size"] = base.window_size
    results["peak_rss_mb"] = round(peak_rss_mb())
    print(results)
    print(save("bench_search", results))


if __name__ == "__main__":
    main()
