"""A sized plan for 36 million abstracts (issue 23, item 6), computed from the measurements, each figure with its
source: ``measured`` (a results file of this repository), ``derived`` (arithmetic on measured figures, formula
given) or ``assumption`` (stated, with its basis).

    .venv/bin/python benchmarks/plan_36m.py [--scale benchmarks/results/scale.json] \
        [--cluster benchmarks/results/scale_cluster_100k.json] > /tmp/plan.md

Prints a Markdown table (docs/scale.md carries it).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

RESULTS = Path(__file__).with_name("results")
N = 36_000_000
DIMS = 384
#: OpenSearch k-NN's documented memory estimate for an HNSW graph: 1.1 * (bytes per vector + 8 * M) per vector.
HNSW_M = 16
#: Elastic's and OpenSearch's sizing guidance: shards of 10 to 50 GB; we aim at 30 GB.
SHARD_GB = 30
#: Abstracts per second of the default document encoder on 2 cores, measured (benchmarks/RESULTS.md, "What each
#: CPU gets"): OpenVINO fp32 39.4, bf16 on AMX 113.3.
CPU_FP32_DOCS_S = 39.4
CPU_AMX_BF16_DOCS_S = 113.3
#: Not measured (no GPU was lent to this project's sessions): MiniLM-L6 on one H100 in fp16 at 256 tokens.
GPU_DOCS_S_ASSUMED = 3000.0
#: Celery ingest, one 2-core worker machine embedding with the default encoder, measured (RESULTS.md, issue 12):
#: 2 embedding processes on 2 cores.
WORKER_2CORE_DOCS_S = 20.89
#: The cluster's own bulk rate with vectors precomputed, 3 nodes on 2 cores (RESULTS.md, issue 12).
CLUSTER_BULK_DOCS_S = 428.0


def gb(x: float) -> str:
    return f"{x / 1e9:,.1f} GB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=Path, default=RESULTS / "scale.json")
    ap.add_argument("--cluster", type=Path, default=RESULTS / "scale_cluster_100k.json")
    args = ap.parse_args()
    scale = json.loads(args.scale.read_text())
    top = max(scale["sizes"], key=lambda r: r["docs"])
    n, disk = top["docs"], top["build"]["disk_mib"]
    per = {k: disk[k] * 2**20 / n for k in ("tantivy", "docs_sqlite", "vectors_f32", "ann")}
    rows: list[tuple[str, str, str]] = []

    def add(what: str, value: str, source: str) -> None:
        rows.append((what, value, source))

    src = f"measured at {n:,} docs (results/scale.json)"
    add("BM25 (tantivy) per document", f"{per['tantivy']:,.0f} B", src)
    add("stored fields + document table (SQLite) per document", f"{per['docs_sqlite']:,.0f} B", src)
    add("float vectors per document (384 x 4 B)", f"{per['vectors_f32']:,.0f} B", src)
    add("ANN graph, int8 (usearch, M=16) per document", f"{per['ann']:,.0f} B", src)
    total_doc = sum(per.values())
    add("embedded engine, 36M documents on disk", gb(total_doc * N), f"derived: {total_doc:,.0f} B x 36M")
    add(
        "build rate, vectors given (stores, then graph)",
        f"{top['build']['build_docs_per_s_stores']:,.0f} docs/s stores, "
        f"{n / max(top['build']['build_seconds_ann'], 1e-9):,.0f} rows/s graph",
        src,
    )
    t_build = N / top["build"]["build_docs_per_s_total"]
    add(
        "embedded build of 36M, vectors given, one process",
        f"{t_build / 3600:,.1f} h",
        f"derived: 36M / {top['build']['build_docs_per_s_total']:,.0f} docs/s (graph insertion grows with log N: a floor)",
    )
    for label, bpv in (("float32", 4 * DIMS), ("int8", DIMS), ("binary (bbq)", DIMS / 8)):
        hnsw = 1.1 * (bpv + 8 * HNSW_M) * N
        add(
            f"cluster kNN memory, 36M vectors, {label} (graph + quantised vectors, off heap, 1 copy)",
            gb(hnsw),
            f"assumption: OpenSearch k-NN estimate 1.1 x ({bpv:g} B + 8 x M) per vector, M = {HNSW_M}",
        )
    cluster_per_doc = None
    if args.cluster.is_file():
        cl = json.loads(args.cluster.read_text())
        big = max(cl["sizes"], key=lambda r: r["docs"])
        os_mib = big.get("opensearch", {}).get("index", {}).get("primary_store_mib")
        if os_mib:
            cluster_per_doc = os_mib * 2**20 / big["docs"]
            add(
                "OpenSearch index per document (Lucene HNSW + SQ 7-bit, 1 copy)",
                f"{cluster_per_doc:,.0f} B",
                f"measured at {big['docs']:,} docs (results/{args.cluster.name})",
            )
    if cluster_per_doc is None:
        cluster_per_doc = total_doc
        add(
            "OpenSearch index per document",
            f"{cluster_per_doc:,.0f} B",
            "assumption: the embedded engine's bytes per document (no cluster figure at this size)",
        )
    primary = cluster_per_doc * N
    shards = max(1, math.ceil(primary / (SHARD_GB * 1e9)))
    add("cluster primary store, 36M", gb(primary), "derived")
    add(
        "primary shards",
        f"{shards} (about {gb(primary / shards)} and {N / shards / 1e6:,.1f}M vectors each)",
        f"derived: store / {SHARD_GB} GB (assumption: the engines' 10-50 GB guidance)",
    )
    int8_mem = 1.1 * (DIMS + 8 * HNSW_M) * N
    for nodes in (3, 6):
        add(
            f"kNN memory per data node, int8, 1 replica, {nodes} nodes",
            gb(2 * int8_mem / nodes),
            "derived: 2 copies of the int8 graph over the nodes (plus heap and page cache for BM25)",
        )
    for label, rate, source in (
        (
            "a CPU without bf16, 2 cores, fp32 (OpenVINO)",
            CPU_FP32_DOCS_S,
            "measured (RESULTS.md, What each CPU gets; the AMX machine's fp32 path)",
        ),
        ("an AMX CPU, 2 cores, bf16", CPU_AMX_BF16_DOCS_S, "measured (RESULTS.md, What each CPU gets)"),
        ("one H100 GPU, fp16", GPU_DOCS_S_ASSUMED, "assumption: not measured, no GPU lent (issue 25)"),
    ):
        add(f"embedding 36M abstracts on {label}", f"{N / rate / 86400:,.1f} days ({rate:,.0f} docs/s)", source)
    need = N / 86400
    add("rate to reindex PubMed in a day", f"{need:,.0f} docs/s", "derived: 36M / 86,400 s")
    add(
        "Celery workers (2-core machines, CPU embedding) for a day",
        f"{math.ceil(need / WORKER_2CORE_DOCS_S)}",
        f"derived: {need:,.0f} / {WORKER_2CORE_DOCS_S} docs/s per worker (measured, RESULTS.md issue 12)",
    )
    add("GPU workers for a day", f"{math.ceil(need / GPU_DOCS_S_ASSUMED)}", "derived from the assumed GPU rate")
    add(
        "cluster bulk rate needed vs measured",
        f"{need:,.0f} vs {CLUSTER_BULK_DOCS_S:,.0f} docs/s (3 nodes, 2 cores)",
        "measured (RESULTS.md issue 12): one small cluster takes a day's reindex only just; add data nodes",
    )
    print("| figure | value | source |")
    print("|---|---|---|")
    for what, value, source in rows:
        print(f"| {what} | {value} | {source} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
