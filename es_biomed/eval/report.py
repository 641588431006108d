"""Markdown renderings of evaluation results, and the JSON results files of training runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["beir_markdown", "bioasq_markdown", "merge_run_record"]


def beir_markdown(result: dict[str, Any], digits: int = 4) -> str:
    runs = result["runs"]
    metrics = list(next(iter(runs.values())))
    lines = ["| run | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name, vals in runs.items():
        lines.append(f"| {name} | " + " | ".join(f"{vals[m]:.{digits}f}" for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def bioasq_markdown(result: dict[str, Any], digits: int = 4) -> str:
    """Table 9 layout: one row per top-k window, MRR@5 / MRR@10 for BM25 and BM25 + rerank."""
    t = result["table"]
    lines = [
        "| k | BM25 MRR@5 | BM25 MRR@10 | BM25+rerank MRR@5 | BM25+rerank MRR@10 |",
        "|---|---|---|---|---|",
    ]
    for w in t["bm25"]:
        b, r = t["bm25"][w], t["bm25+rerank"][w]
        lines.append(
            f"| {w} | {b['MRR@5']:.{digits}f} | {b['MRR@10']:.{digits}f} | {r['MRR@5']:.{digits}f} | {r['MRR@10']:.{digits}f} |"
        )
    lines.append("")
    lines.append(
        f"pairs kept: {result['pairs_kept']}, pairs removed (Jaccard > {result['config']['stats']['jaccard_threshold']}): {result['pairs_removed']}"
    )
    return "\n".join(lines) + "\n"


def merge_run_record(path: str | os.PathLike[str], key: str, record: dict[str, Any]) -> None:
    """Write ``record`` under ``runs[key]`` of the JSON results file at ``path``, keeping its other runs."""
    p = Path(path)
    data = json.loads(p.read_text()) if p.exists() else {"runs": {}}
    data.setdefault("runs", {})[key] = record
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=2) + "\n")
