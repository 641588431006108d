"""Markdown renderings of evaluation results, and the JSON results files of training runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from es_biomed.eval.significance import format_p

__all__ = ["beir_markdown", "bioasq_markdown", "merge_run_record"]


def beir_markdown(result: dict[str, Any], digits: int = 4) -> str:
    """One row per run; with a paired test against bm25, its p-value beside each metric."""
    runs = result["runs"]
    sig = result.get("significance", {})
    metrics = list(next(iter(runs.values())))
    head = [c for m in metrics for c in ([m, "p"] if sig else [m])]
    lines = ["| run | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for name, vals in runs.items():
        cells = []
        for m in metrics:
            cells.append(f"{vals[m]:.{digits}f}")
            if sig:
                cells.append(format_p(sig.get(name, {}).get(m)))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    missing = result.get("config", {}).get("qrels_missing") or {}
    if missing.get("pairs"):
        lines.append("")
        lines.append(
            f"warning: {missing['pairs']} judged pairs ({missing['documents']} documents, e.g. "
            f"{', '.join(missing['examples'])}) are absent from the corpus"
        )
    return "\n".join(lines) + "\n"


def bioasq_markdown(result: dict[str, Any], digits: int = 4) -> str:
    """Table 9 in the paper's layout beside the paper's numbers (:func:`~es_biomed.eval.table9.table9_markdown`),
    then the pair counts and, for a pooled corpus, its size."""
    from es_biomed.eval.table9 import table9_markdown

    cfg = result["config"]
    lines = [table9_markdown(result, digits)]
    lines.append(
        f"questions: {cfg['queries']}, documents: {cfg['documents']}, pairs kept: {result['pairs_kept']}, "
        f"pairs removed (Jaccard > {cfg['stats']['jaccard_threshold']}): {result['pairs_removed']}"
    )
    pool = cfg.get("distractors")
    if pool:
        lines.append(
            f"distractors: {pool['added']} documents from {len(pool['files'])} files ({pool['duplicates']} "
            f"duplicates merged; {pool['same_question_ignored']} documents of the same questions ignored)"
        )
    missing = cfg.get("qrels_missing") or {}
    if missing.get("pairs"):
        lines.append(f"warning: {missing['pairs']} judged pairs point at documents absent from the corpus")
    return "\n".join(lines) + "\n"


def merge_run_record(path: str | os.PathLike[str], key: str, record: dict[str, Any]) -> None:
    """Write ``record`` under ``runs[key]`` of the JSON results file at ``path``, keeping its other runs."""
    p = Path(path)
    data = json.loads(p.read_text()) if p.exists() else {"runs": {}}
    data.setdefault("runs", {})[key] = record
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=2) + "\n")
