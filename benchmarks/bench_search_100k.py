"""Search latency at 100k documents (issue 10, item 4): every real abstract in ``../shared/data``, then copies.

    .venv/bin/python benchmarks/bench_search_100k.py [--shared ../shared/data] [--index /tmp/es-biomed-bench100k]
        [--docs 100000] [--encoder all-MiniLM-L6-v2-int8] [--reuse]

Real texts: SciFact corpus, the CORD-19 sample, the contexts of every BioASQ SQuAD file and the PubMedQA
(PQA-L) abstracts, deduplicated by text. Past those, the index is filled with copies of them under new ids
(``<id>#copy<N>``); the encoder is wrapped in a :class:`CachedEncoder`, so a copy costs no encoding. The
queries are the 300 SciFact test claims, encoded first: latency is per query without encoding (the timing
loop is ``bench_search.latency``), p50 / p95 in ms.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from _common import Timer, peak_rss_mb, save
from bench_search import latency

from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.corpus import Document, iter_documents, load_bioasq, read_queries
from es_biomed.encode import load_encoder
from es_biomed.encode.memo import CachedEncoder
from es_biomed.ingest import index_documents
from es_biomed.query.presets import default_plan

#: Reranking windows measured (the preset's is 30).
WINDOWS = (30, 100)
#: Targets from issue 10.
TARGETS = {"rerank_w100_p50_ms": 10.0, "rerank_over_bm25_w100": 3.0, "dense_p50_ms": 20.0}


def pubmedqa(path: Path) -> Iterator[Document]:
    """PubMedQA PQA-L (``ori_pqal.json``: ``{pmid: {QUESTION, CONTEXTS, ...}}``): the joined contexts are the abstract."""
    for pmid, rec in json.loads(path.read_text(encoding="utf-8")).items():
        text = " ".join(c.strip() for c in rec.get("CONTEXTS", []) if c.strip())
        if text:
            yield Document(id=f"pubmedqa:{pmid}", abstract=text, pmid=pmid, source="pubmedqa")


def real_documents(shared: Path) -> tuple[list[Document], dict[str, int]]:
    """Every real text, deduplicated by ``Document.text`` (ids made unique); also the count kept per source."""
    squad = sorted((shared / "bioasq").glob("BioASQ-*.json"))  # the *_golden.json files are not SQuAD
    sources = {
        "scifact": iter_documents(shared / "scifact", "beir"),
        "cord19": iter_documents(shared / "cord19" / "merged_dedup_cord_uid.jsonl", "beir"),
        "bioasq": iter(load_bioasq(squad, threshold=None).corpus.values()),
        "pubmedqa": pubmedqa(shared / "pubmedqa" / "ori_pqal.json"),
    }
    docs: list[Document] = []
    texts: set[str] = set()
    ids: set[str] = set()
    kept: dict[str, int] = {}
    for name, it in sources.items():
        kept[name] = 0
        for d in it:
            if d.text in texts:
                continue
            if d.id in ids:
                d = dataclasses.replace(d, id=f"{name}:{d.id}")
            texts.add(d.text)
            ids.add(d.id)
            docs.append(d)
            kept[name] += 1
    return docs, kept


def with_copies(real: list[Document], n: int) -> Iterator[Document]:
    """``real`` then copies of it with ids ``<id>#copy<N>`` (round N = 1, 2, ...), ``n`` documents in all."""
    yield from real[:n]
    copies = (dataclasses.replace(d, id=f"{d.id}#copy{r}") for r in itertools.count(1) for d in real)
    yield from itertools.islice(copies, max(0, n - len(real)))


def disk_usage(path: Path) -> dict[str, float]:
    """Apparent size and allocated size (as ``du``) of a directory, in MiB."""
    files = [p for p in path.rglob("*") if p.is_file()]
    apparent = sum(p.stat().st_size for p in files)
    allocated = sum(p.stat().st_blocks * 512 for p in files)
    return {"apparent_mib": round(apparent / 2**20, 1), "du_mib": round(allocated / 2**20, 1), "files": len(files)}


def scifact_test_claims(shared: Path) -> list[str]:
    queries = read_queries(shared / "scifact" / "queries.jsonl")
    lines = (shared / "scifact" / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]
    qids = list(dict.fromkeys(line.split("\t")[0] for line in lines if line.strip()))
    return [queries[q] for q in qids]


def growth(results: dict[str, dict], base_file: Path) -> dict[str, dict[str, float]]:
    """p50 / p95 at 100k over those at 10k (``bench_search.json``, whose rerank is at window 30)."""
    if not base_file.exists():
        return {}
    base = json.loads(base_file.read_text())
    pairs = {"bm25": "bm25", "rerank_w30": "rerank", "dense": "dense", "hybrid": "hybrid"}
    out = {}
    for ours, theirs in pairs.items():
        if ours in results and theirs in base:
            out[ours] = {
                "p50_10k_ms": base[theirs]["p50_ms"],
                "p95_10k_ms": base[theirs]["p95_ms"],
                "p50_x": round(results[ours]["p50_ms"] / base[theirs]["p50_ms"], 1),
                "p95_x": round(results[ours]["p95_ms"] / base[theirs]["p95_ms"], 1),
            }
    return out


def main() -> None:
    os.environ.setdefault("USE_TF", "0")  # as the CLI: keep transformers from importing TensorFlow
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--index", default="/tmp/es-biomed-bench100k")
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--encoder", default="all-MiniLM-L6-v2-int8")
    ap.add_argument("--reuse", action="store_true", help="search an index already built at --index")
    args = ap.parse_args()
    shared, index_path = Path(args.shared), Path(args.index)
    enc = CachedEncoder(load_encoder(args.encoder))

    real, per_source = real_documents(shared)
    n_real = min(len(real), args.docs)
    results: dict[str, object] = {
        "encoder": args.encoder,
        "corpus": {
            "real": n_real,
            "copies": max(0, args.docs - n_real),
            "real_by_source": per_source,
        },
    }
    print("corpus:", results["corpus"])
    if not args.reuse:
        if index_path.exists():
            shutil.rmtree(index_path)
        with Timer() as t_index:
            report = index_documents(with_copies(real, args.docs), index_path, enc, show_progress=True)
        results["indexing"] = {
            "written": report.written,
            "seconds": round(t_index.seconds, 1),
            "texts_encoded": len(enc),
        }
        print("indexing:", results["indexing"])
    index = EmbeddedIndex(index_path)
    results["documents"] = index.count()
    results["index_size"] = disk_usage(index_path)
    print("documents:", results["documents"], "size:", results["index_size"])

    queries = scifact_test_claims(shared)
    with Timer() as t_enc:
        vecs = enc.encode_queries(queries, batch_size=64)
    results["queries"] = len(queries)
    results["query_encoding_ms_per_query_batched"] = round(1000 * t_enc.seconds / len(queries), 2)

    for mode in ("bm25", "rerank", "dense", "hybrid"):
        for w in WINDOWS if mode == "rerank" else (None,):
            plan = default_plan(mode=mode, k=10, **({"window_size": w} if w else {}))
            name = f"{mode}_w{w}" if w else mode
            results[name] = latency(index, plan, queries, vecs)
            print(name, results[name])
    results["window_size_default"] = default_plan().window_size
    ratio = results["rerank_w100"]["p50_ms"] / results["bm25"]["p50_ms"]
    results["rerank_over_bm25_p50_w100"] = round(ratio, 2)
    measured = {
        "rerank_w100_p50_ms": results["rerank_w100"]["p50_ms"],
        "rerank_over_bm25_w100": ratio,
        "dense_p50_ms": results["dense"]["p50_ms"],
    }
    results["targets"] = {k: {"target": TARGETS[k], "met": v <= TARGETS[k]} for k, v in measured.items()}
    results["growth_from_10k"] = growth(results, Path(__file__).with_name("results") / "bench_search.json")
    results["peak_rss_mb"] = round(peak_rss_mb())
    print(json.dumps(results, indent=2))
    print(save("bench_search_100k", results))


if __name__ == "__main__":
    main()
