"""The reproducibility table (benchmarks/repro.yaml): check it, record it, and render the README and docs/ from it.

    python benchmarks/repro.py check --tier fast     # run the fast conditions' commands, compare (default tier)
    python benchmarks/repro.py check                 # every condition (the regression tier does this)
    python benchmarks/repro.py check --no-run        # compare the outputs already on disk
    python benchmarks/repro.py record                # write the current outputs' values into the YAML
    python benchmarks/repro.py tables [--check]      # regenerate the tables of README.md and docs/ (or fail if
                                                     # they differ); FILE... to name the Markdown files
    python benchmarks/repro.py init                  # rebuild the condition list, keeping recorded figures

All logic lives in es_biomed.eval.repro; this file only parses arguments, and `init` holds the list of commands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
YAML = REPO / "benchmarks" / "repro.yaml"
D = "../shared/data"
POOL = {
    "4b": "[56]b",
    "5b": "[46]b",
    "6b": "[45]b",
}


def _pool_flags(split: str) -> str:
    rest = [
        f"'{D}/bioasq/BioASQ-test-factoid-{POOL[split]}-*.json'",
        f"{D}/bioasq/BioASQ-train-factoid-7b.json",
        f"'{D}/bioasq/*_golden.json'",
        f"{D}/scifact",
        f"{D}/cord19/merged_dedup_cord_uid.jsonl",
        f"{D}/pubmedqa/ori_pqal.json",
    ]
    return " ".join(f"--distractors {r}" for r in rest)


def _init() -> dict:
    conds = []
    beir = [
        ("scifact-sample", "data/scifact-sample", "test", "fast", "indexes/scifact-sample"),
        ("scifact", f"{D}/scifact", "test", "slow", "indexes/report/scifact"),
    ]
    for name, path, split, tier, index in beir:
        out = f"runs/repro/{name}-{split}.json"
        cmd = f"es-biomed eval beir {path} --split {split} --index {index} --output {out} --no-progress"
        for run in ("bm25", "bm25+rerank", "dense", "hybrid"):
            c = {
                "name": f"{name}-{split}/{run}",
                "dataset": name,
                "split": split,
                "encoder": "all-MiniLM-L6-v2",
                "mode": run,
                "tier": tier,
                "command": cmd,
                "output": out,
                "path": f"runs.{run}",
                "expected": {"NDCG@10": 0, "Recall@100": 0, "MRR@10": 0},
                "table": name,
                "row": run,
            }
            if run != "bm25":
                c["p_path"] = f"significance.{run}"
                c["p_expected"] = {"NDCG@10": 0}
            conds.append(c)
    splits = [
        ("4b", f"'{D}/bioasq/BioASQ-test-factoid-4b-*.json'"),
        ("5b", f"'{D}/bioasq/BioASQ-test-factoid-5b-*.json'"),
        ("6b", f"'{D}/bioasq/BioASQ-test-factoid-6b-*.json'"),
        ("7b-train", f"{D}/bioasq/BioASQ-train-factoid-7b.json"),
    ]
    for pooled in (False, True):
        for split, files in splits:
            if pooled and split not in POOL:
                continue
            name = f"bioasq-{split}" + ("-pool" if pooled else "")
            out = f"runs/repro/{name}.json"
            index = "indexes/report/pool" if pooled else f"indexes/report/{split}"
            # globs in FILES are left to the shell: unquote them there
            cmd = f"es-biomed eval bioasq {files.strip(chr(39))} "
            cmd += (_pool_flags(split) + " ") if pooled else ""
            cmd += f"--index {index} --output {out} --no-progress"
            for k in (20, 30, 40, 50):
                for run in ("bm25", "bm25+cosine", "bm25+rerank"):
                    c = {
                        "name": f"{name}/{run}@{k}",
                        "dataset": "bioasq",
                        "split": split + (" (pool)" if pooled else ""),
                        "encoder": "all-MiniLM-L6-v2",
                        "mode": run,
                        "tier": "slow",
                        "command": cmd,
                        "output": out,
                        "path": f"table.{run}.{k}",
                        "expected": {"MRR@5": 0, "MRR@10": 0},
                        "table": "table9-pool" if pooled else "table9-own",
                        "row": f"{split}, top {k}",
                        "column": run,
                    }
                    if run != "bm25":
                        c["p_path"] = f"significance.{run}.{k}"
                        c["p_expected"] = {"MRR@10": 0}
                    conds.append(c)
    qa_rows = {
        "gold context": "gold context",
        "bm25": "BM25, top 20 passages",
        "bm25+rerank": "BM25 + rerank, top 20 passages",
    }
    for suffix, flags, label in (("", "", ""), ("-rank-weight-0", " --rank-weight 0", "ablation, rank weight 0: ")):
        out = f"runs/repro/qa-e2e{suffix}.json"
        cmd = (
            f"es-biomed eval qa {D}/bioasq/BioASQ-train-factoid-7b.json --index indexes/bioasq7b-dev "
            f"--encoder biomed-minilm{flags} --output {out} --no-progress"
        )
        for setting, row in qa_rows.items():
            if suffix and setting == "gold context":
                continue  # the rank prior plays no part with the gold contexts
            conds.append(
                {
                    "name": f"qa-e2e{suffix}/{setting}",
                    "dataset": "bioasq",
                    "split": "7b-train dev (109 questions)",
                    "encoder": "biomed-minilm + biomed-qa",
                    "mode": setting,
                    "tier": "slow",
                    "command": cmd,
                    "output": out,
                    "path": f"table.{setting}",
                    "expected": {"strict_acc": 0, "lenient_acc": 0, "mrr": 0, "answer_in_passages": 0},
                    "table": "qa-e2e",
                    "row": label + row,
                }
            )
    conds += _encoder_conditions()
    return {
        "tolerance": 0.0005,
        "p_tolerance": 0.01,
        "tables": {
            **{f"encoder-{e}": {"row_header": "split", "cells": "column"} for e in SHIPPED_ENCODERS},
            "table9-own": {"paper": "table9", "row_header": "split, k"},
            "table9-pool": {"paper": "table9", "row_header": "split, k"},
            "qa-e2e": {
                "row_header": "setting (reader biomed-qa, encoder biomed-minilm)",
                "labels": {
                    "strict_acc": "Strict Acc",
                    "lenient_acc": "Lenient Acc",
                    "mrr": "MRR",
                    "answer_in_passages": "answer in passages",
                },
            },
        },
        "conditions": conds,
    }


# The encoders a fresh clone has (shipped, or fetched from PyPI): issue 12's per-model tables. key -> (the name
# eval_retrieval is given, the suffix of the indexes it builds: the bf16 export's name and its fingerprint, which
# tune_rescore keys its results by). MPNet is scored through its bf16 export, the same identity as torch.
SHIPPED_ENCODERS = {
    "all-MiniLM-L6-v2": ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2-bf16-a0197b47a9855de5"),
    "biomed-minilm": ("biomed-minilm", "biomed-minilm-bf16-263be998a1feab1a"),
    "all-mpnet-base-v2": ("all-mpnet-base-v2-bf16", "all-mpnet-base-v2-bf16-3c8e054311afb6e5"),
}


def _encoder_conditions() -> list[dict]:
    """SciFact test / dev NDCG@10 and BioASQ dev MRR@10 per shipped encoder (``training/eval_retrieval.py``), and
    the rescore re-tuned on dev (``training/tune_rescore.py``; no table: the tuning table of docs/models.md also
    holds the fine-tuned models, which a fresh clone does not have)."""
    out = "runs/repro/encoders.json"
    tuned = "runs/repro/rescore_tuning.json"
    evaluate = (
        "es-biomed models fetch all-mpnet-base-v2 && python training/eval_retrieval.py --models "
        + " ".join(model for model, _ in SHIPPED_ENCODERS.values())
        + f" --bioasq {D}/bioasq/BioASQ-train-factoid-7b.json --scifact {D}/scifact --scifact-dev --fast"
        f" --index-root indexes/encoders --out {out}"
    )
    tune = f"python training/tune_rescore.py {D} --index-dir indexes/encoders --output {tuned}"
    conds = []
    for key, (model, suffix) in SHIPPED_ENCODERS.items():
        base = {"dataset": "", "split": "", "encoder": key, "tier": "slow", "command": evaluate, "output": out}
        for split, label in (("scifact_test", "SciFact test NDCG@10"), ("scifact_dev", "SciFact dev NDCG@10")):
            for run in ("bm25", "bm25+rerank", "dense", "hybrid"):
                conds.append(
                    {
                        **base,
                        "name": f"encoders/{key}/{split}/{run}",
                        "dataset": "scifact",
                        "split": split.split("_")[1],
                        "mode": run,
                        "path": f"results.{model}.{split}.runs.{run}",
                        "expected": {"NDCG@10": 0},
                        "table": f"encoder-{key}",
                        "row": label,
                        "column": run,
                    }
                )
        for k in (20, 50):
            for run in ("bm25", "bm25+rerank"):
                conds.append(
                    {
                        **base,
                        "name": f"encoders/{key}/bioasq_dev/{run}@{k}",
                        "dataset": "bioasq",
                        "split": "7b-train dev",
                        "mode": run,
                        "path": f"results.{model}.bioasq_dev.table.{run}.{k}",
                        "expected": {"MRR@10": 0},
                        "table": f"encoder-{key}",
                        "row": f"BioASQ dev MRR@10, k = {k}",
                        "column": run,
                    }
                )
        for plan in ("default", "tuned"):
            for what, path, metrics in (
                ("scifact", "", ("scifact_dev_ndcg10", "scifact_test_ndcg10")),
                ("bioasq", ".bioasq_dev_mrr10", ("k=20", "k=50")),
            ):
                conds.append(
                    {
                        **base,
                        "name": f"rescore-tuning/{key}/{plan}/{what}",
                        "dataset": what,
                        "split": "dev, test" if what == "scifact" else "7b-train dev",
                        "mode": f"bm25+rerank ({plan} plan)",
                        "command": tune,
                        "output": tuned,
                        "path": f"runs.{suffix}.{plan}{path}",
                        "expected": dict.fromkeys(metrics, 0),
                    }
                )
    return conds


def _record_fp32(raw: dict, c: Any, metrics: dict, ps: dict, table: Any) -> None:
    """On a machine whose document vectors are fp32: pin in the condition's ``fp32`` block exactly the figures that
    differ from the recorded (bf16) ones by more than the tolerance; a condition whose figures all agree has none."""
    block = {}
    exp = {m: round(v, 4) for m, v in metrics.items() if abs(v - c.expected.get(m, float("inf"))) > table.tolerance}
    pexp = {m: round(v, 4) for m, v in ps.items() if abs(v - c.p_expected.get(m, float("inf"))) > table.p_tolerance}
    if exp:
        block["expected"] = exp
    if pexp:
        block["p_expected"] = pexp
    if block:
        raw["fp32"] = block
    else:
        raw.pop("fp32", None)


def _keep_recorded(new: dict) -> dict:
    """``init`` keeps the figures already recorded for a condition of the same name (its expected values, p-values
    and fp32 block), so rebuilding the list to add conditions does not lose them; new ones start at 0."""
    import yaml

    if not YAML.exists():
        return new
    old = {c["name"]: c for c in (yaml.safe_load(YAML.read_text()) or {}).get("conditions", [])}
    for c in new["conditions"]:
        was = old.get(c["name"])
        if was is None:
            continue
        for key in ("expected", "p_expected", "fp32"):
            if key in was and (key == "fp32" or set(was[key]) == set(c.get(key) or {})):
                c[key] = was[key]
    return new


HEADER = """\
# The reproducibility table (Pyserini 2CR style): every number the results tables of README.md and docs/ report,
# with the exact command that produces it and the expected metrics to 4 decimals. `python benchmarks/repro.py check`
# reruns the commands and fails on any drift over `tolerance`; the tables are rendered from this file
# (`python benchmarks/repro.py tables`). tier fast: also run by the default test tier (the shipped sample).
"""


def _dump(data: dict) -> None:
    import yaml

    YAML.write_text(HEADER + yaml.safe_dump(data, sort_keys=False, width=200, allow_unicode=True))


def main(argv: list[str] | None = None) -> int:
    import yaml

    from es_biomed.eval.repro import (
        actual,
        compare,
        document_precision,
        load_repro,
        render_tables,
        run_conditions,
        table_pages,
        update_readme,
    )

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    chk = sub.add_parser("check")
    chk.add_argument("--tier", choices=["fast", "slow", "all"], default="all")
    chk.add_argument("--no-run", action="store_true")
    rec = sub.add_parser("record")
    rec.add_argument("--run", action="store_true", help="run the commands first")
    tab = sub.add_parser("tables")
    tab.add_argument("--check", action="store_true")
    tab.add_argument(
        "files",
        nargs="*",
        type=Path,
        help="Markdown files holding the tables (default: README.md and every docs/ page with a repro block)",
    )
    sub.add_parser("init")
    args = ap.parse_args(argv)
    if args.cmd == "init":
        _dump(_keep_recorded(_init()))
        return 0
    table = load_repro(YAML)
    if args.cmd == "check":
        conds = table.select(None if args.tier == "all" else [args.tier])
        if not args.no_run:
            run_conditions(conds, REPO)
        precision = document_precision()
        problems = compare(table, conds, REPO, precision)
        print(f"document vectors embedded in {precision} on this machine")
        for p in problems:
            print(p)
        print(f"{len(conds) - len({p.split(':')[0] for p in problems})} of {len(conds)} conditions reproduced")
        return 1 if problems else 0
    if args.cmd == "record":
        if args.run:
            run_conditions(table.conditions, REPO)
        data = yaml.safe_load(YAML.read_text())
        fp32 = document_precision() == "fp32"  # a machine without bf16 records into each condition's fp32 block
        for c, raw in zip(table.conditions, data["conditions"], strict=True):
            metrics, ps = actual(c, REPO)
            if fp32:
                _record_fp32(raw, c, metrics, ps, table)
                continue
            raw["expected"] = {m: round(v, 4) for m, v in metrics.items()}
            if ps:
                raw["p_expected"] = {m: round(v, 4) for m, v in ps.items()}
        _dump(data)
        return 0
    tables = render_tables(table)
    files = args.files or table_pages(REPO)
    changed = update_readme(files, tables, write=not args.check)
    if args.check and changed:
        names = ", ".join(
            str(f.resolve().relative_to(REPO)) if f.resolve().is_relative_to(REPO) else str(f) for f in files
        )
        print(f"tables out of date in {names}: {', '.join(changed)}; run python benchmarks/repro.py tables")
        return 1
    print(f"{len(tables)} tables; changed: {', '.join(changed) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
