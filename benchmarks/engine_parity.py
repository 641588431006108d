"""Embedded engine vs real engines on real data: NDCG@10 per mode and mean top-10 overlap, with the same vectors.

    .venv/bin/python benchmarks/engine_parity.py ../shared/data/scifact \\
        --opensearch "$(tests/engines/opensearch/node.sh start | tail -1)" \\
        --elasticsearch "$(tests/engines/elasticsearch/node.sh start | tail -1)"

The corpus is embedded once (``CachedEncoder``), so every engine gets byte-identical vectors. Each engine is
compared with an embedded index whose analyzer is the closest to the engine's: the default (UAX#29, Lucene stop
words, Snowball) against ``english`` (standard tokenizer, Lucene stop words, Porter), and no stemming / no stop
words against ``standard`` where the node has no analysis-common (the Elasticsearch node from Maven Central).
Modes the node cannot run (``bm25+rerank`` without lang-painless) are left out and said so. Writes
``benchmarks/results/engine_parity.json`` and prints the Markdown table for the README.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import Timer, save  # noqa: E402

RUNS = {"bm25": "bm25", "bm25+rerank": "rerank", "dense": "dense", "hybrid": "hybrid"}


def main() -> None:
    from es_biomed.backends.cluster import ClusterBackend, ClusterConfig
    from es_biomed.backends.embedded.index import EmbeddedIndex
    from es_biomed.corpus.readers import load_beir
    from es_biomed.encode import load_encoder
    from es_biomed.encode.memo import CachedEncoder
    from es_biomed.eval.metrics import evaluate
    from es_biomed.eval.protocols import run_modes
    from es_biomed.ingest import index_documents
    from es_biomed.query.analysis import AnalyzerConfig
    from es_biomed.query.presets import default_plan

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--opensearch", help="OpenSearch URL")
    ap.add_argument("--elasticsearch", help="Elasticsearch URL")
    ap.add_argument("--encoder", default="all-MiniLM-L6-v2")
    ap.add_argument("-k", type=int, default=100)
    args = ap.parse_args()

    ds = load_beir(args.dataset, args.split)
    enc = CachedEncoder(load_encoder(args.encoder))
    base = default_plan()
    plans = {
        name: base.replace(
            mode=mode, k=args.k, window_size=max(base.window_size, args.k) if mode == "hybrid" else base.window_size
        )
        for name, mode in RUNS.items()
    }
    tmp = Path(tempfile.mkdtemp(prefix="engine-parity-"))
    embedded: dict[str, EmbeddedIndex] = {}
    timings: dict[str, float] = {}

    def embedded_index(analyzer: str) -> EmbeddedIndex:
        if analyzer not in embedded:
            path = tmp / analyzer
            if analyzer == "standard":
                EmbeddedIndex.create(path, enc.info, analyzer=AnalyzerConfig(stopwords=False, stemmer=""))
            with Timer() as t:
                index_documents(ds.corpus.values(), path, enc, show_progress=True)
            timings[f"embedded-{analyzer}-index_s"] = round(t.seconds, 1)
            embedded[analyzer] = EmbeddedIndex(path)
        return embedded[analyzer]

    results: dict[str, object] = {
        "dataset": str(args.dataset),
        "split": args.split,
        "queries": len(ds.queries),
        "documents": len(ds.corpus),
        "engines": {},
    }
    rows = []
    for engine, url in (("opensearch", args.opensearch), ("elasticsearch", args.elasticsearch)):
        if not url:
            continue
        be = ClusterBackend.connect(
            ClusterConfig(url=url, engine=engine, alias=f"es-biomed-parity-{uuid.uuid4().hex[:6]}")
        )
        caps = be.capabilities()
        analyzer = be.default_analyzer()
        emb = embedded_index(analyzer)
        names = [n for n in RUNS if n != "bm25+rerank" or caps.scripts]
        try:
            be.setup(enc.info, analyzer=analyzer)
            with Timer() as t:
                report = be.index_documents(ds.corpus.values(), enc)
            assert not report.failed, report.failed[:3]
            timings[f"{engine}-index_s"] = round(t.seconds, 1)
            sel = {n: plans[n] for n in names}
            t0 = time.perf_counter()
            eng_runs = run_modes(be, ds, enc, sel)
            timings[f"{engine}-search_s"] = round(time.perf_counter() - t0, 1)
            emb_runs = run_modes(emb, ds, enc, sel)
        finally:
            be.drop()
        per = {}
        for n in names:
            e = evaluate(ds.qrels, eng_runs[n], ["NDCG@10"])["NDCG@10"]
            m = evaluate(ds.qrels, emb_runs[n], ["NDCG@10"])["NDCG@10"]

            def top10(run, q):  # type: ignore[no-untyped-def]
                return [d for d, _ in sorted(run.get(q, {}).items(), key=lambda kv: -kv[1])[:10]]

            overlap = sum(len(set(top10(eng_runs[n], q)) & set(top10(emb_runs[n], q))) for q in ds.queries) / len(
                ds.queries
            )
            per[n] = {
                "engine_ndcg10": round(e, 4),
                "embedded_ndcg10": round(m, 4),
                "diff": round(e - m, 4),
                "top10_overlap": round(overlap, 2),
            }
            rows.append(
                f"| {engine} {caps.version} ({analyzer}) | {n} | {e:.4f} | {m:.4f} | {e - m:+.4f} | {overlap:.2f} |"
            )
        skipped = [n for n in RUNS if n not in names]
        results["engines"][engine] = {"version": caps.version, "analyzer": analyzer, "runs": per, "not_run": skipped}  # type: ignore[index]
    results["timings"] = timings
    out = save("engine_parity", results)
    print("| engine (analyzer) | run | NDCG@10 engine | NDCG@10 embedded | diff | mean top-10 overlap |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
