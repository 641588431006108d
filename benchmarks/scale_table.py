"""The growth table of ``bench_scale.py``'s results, as Markdown (RESULTS.md and docs/scale.md carry it).

.venv/bin/python benchmarks/scale_table.py [benchmarks/results/scale.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MODES = ("bm25", "rerank_w100", "dense", "hybrid", "dense_exact")


def table(payload: dict) -> str:
    head = [
        "documents",
        *[f"{m} p50 / p99 ms" for m in MODES],
        "dense recall@10 vs exact",
        "build docs/s (stores / with graph)",
        "disk MiB (BM25 / SQLite / vectors / graph)",
        "peak RSS searching MiB (with exact scan)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in payload["sizes"]:
        b, s = r["build"], r["search"]
        d = b["disk_mib"]
        cells = [f"{r['docs']:,}"]
        cells += [f"{s['modes'][m]['p50_ms']:.2f} / {s['modes'][m]['p99_ms']:.1f}" for m in MODES]
        rec = s.get("dense_recall_at_10_vs_exact")
        cells.append(f"{rec:.4f}" if rec is not None else "1 (exact scan)")
        cells.append(f"{b['build_docs_per_s_stores']:,.0f} / {b['build_docs_per_s_total']:,.0f}")
        cells.append(f"{d['tantivy']:,.0f} / {d['docs_sqlite']:,.0f} / {d['vectors_f32']:,.0f} / {d['ann']:,.0f}")
        cells.append(f"{s['search_peak_rss_mib']:,.0f} ({s.get('peak_rss_with_exact_scan_mib', float('nan')):,.0f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("results") / "scale.json"
    print(table(json.loads(path.read_text())))
