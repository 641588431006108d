"""The reproducibility table, in the style of Pyserini's two-click reproductions (2CR).

One YAML file (``benchmarks/repro.yaml``) lists every number the README and the ``docs/`` pages report::

    tolerance: 0.0005            # the largest drift a metric may show
    p_tolerance: 0.01            # p-values (randomization tests, seeded) are checked more loosely
    conditions:
      - name: scifact-test/bm25+rerank
        dataset: scifact
        split: test
        encoder: all-MiniLM-L6-v2
        mode: bm25+rerank
        tier: slow               # slow: the regression tier; fast: also the default tier
        command: es-biomed eval beir ../shared/data/scifact --index indexes/scifact --output runs/repro/scifact.json
        output: runs/repro/scifact.json
        path: runs.bm25+rerank   # where in the output JSON the metrics are (dots; keys may hold "+" and "@")
        expected: {NDCG@10: 0.7210, Recall@100: 0.9109}
        p_path: significance.bm25+rerank    # optional: {metric: test} whose p_value is reported
        p_expected: {NDCG@10: 0.0001}
        table: scifact           # the Markdown table it belongs to, and its row / column labels
        row: bm25+rerank
        fp32: {expected: {NDCG@10: 0.7210}, p_expected: {NDCG@10: 0.0001}}   # optional, see below

Document vectors are embedded in bf16 where the CPU has AMX / AVX512-BF16 and in fp32 elsewhere (the same
identity, within 5e-3), which can move dense and hybrid figures past the tolerance. A condition recorded on a bf16
CPU may carry its fp32 figures under ``fp32``; :func:`compare` uses them when ``precision`` is ``"fp32"``
(:func:`document_precision` says which one this machine embeds in).

:func:`run_conditions` runs each distinct command once (through the shell, exactly as written, with the
environment's ``es-biomed`` first on ``PATH``) and :func:`compare` lists every drift. :func:`render_tables`
renders the tables from the same file and :func:`update_readme` writes them between ``<!-- repro:NAME -->`` and
``<!-- /repro:NAME -->`` in README.md and the ``docs/`` pages (:func:`table_pages` finds them), so no page can drift
from it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from es_biomed.errors import EsBiomedError, require

__all__ = [
    "Condition",
    "ReproError",
    "ReproTable",
    "load_repro",
    "run_conditions",
    "compare",
    "document_precision",
    "render_tables",
    "update_readme",
    "table_pages",
]

_KEYS = {
    "name",
    "dataset",
    "split",
    "encoder",
    "mode",
    "tier",
    "command",
    "output",
    "path",
    "expected",
    "p_path",
    "p_expected",
    "table",
    "row",
    "column",
    "fp32",
}


@dataclass(frozen=True)
class Condition:
    name: str
    dataset: str
    split: str
    encoder: str
    mode: str
    tier: str
    command: str
    output: str
    path: str
    expected: dict[str, float]
    p_path: str | None = None
    p_expected: dict[str, float] = field(default_factory=dict)
    table: str | None = None
    row: str | None = None
    column: str | None = None
    expected_fp32: dict[str, float] = field(default_factory=dict)
    p_expected_fp32: dict[str, float] = field(default_factory=dict)

    def wanted(self, precision: str = "bf16") -> tuple[dict[str, float], dict[str, float]]:
        """(expected metrics, expected p-values) for document vectors embedded in ``precision``."""
        if precision == "fp32" and (self.expected_fp32 or self.p_expected_fp32):
            return {**self.expected, **self.expected_fp32}, {**self.p_expected, **self.p_expected_fp32}
        return self.expected, self.p_expected


@dataclass(frozen=True)
class ReproTable:
    conditions: tuple[Condition, ...]
    tolerance: float = 0.0005
    p_tolerance: float = 0.01
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def select(self, tiers: Iterable[str] | None = None) -> list[Condition]:
        wanted = set(tiers) if tiers is not None else None
        return [c for c in self.conditions if wanted is None or c.tier in wanted]


class ReproError(ValueError, EsBiomedError):
    """The reproducibility table is malformed (names the condition and key)."""


def load_repro(path: str | os.PathLike[str]) -> ReproTable:
    """Read and validate the YAML table."""
    yaml = require("yaml", "report")
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("conditions"), list):
        raise ReproError(f"{path}: expected a mapping with a 'conditions' list")
    conds = []
    seen: set[str] = set()
    for i, c in enumerate(data["conditions"]):
        where = f"{path}: conditions[{i}]"
        if not isinstance(c, dict):
            raise ReproError(f"{where}: expected a mapping")
        unknown = sorted(set(c) - _KEYS)
        if unknown:
            raise ReproError(f"{where}.{unknown[0]}: unknown key")
        missing = [k for k in ("name", "command", "output", "path", "expected") if k not in c]
        if missing:
            raise ReproError(f"{where}.{missing[0]}: required")
        if c["name"] in seen:
            raise ReproError(f"{where}.name: {c['name']!r} is listed twice")
        seen.add(c["name"])
        if c.get("tier", "slow") not in ("fast", "slow"):
            raise ReproError(f"{where}.tier: expected fast or slow")
        fp32 = c.get("fp32") or {}
        if not isinstance(fp32, dict) or set(fp32) - {"expected", "p_expected"}:
            raise ReproError(f"{where}.fp32: expected a mapping with expected and/or p_expected")
        for key in ("expected", "p_expected"):
            extra = sorted(set(fp32.get(key) or {}) - set(c.get(key) or {}))
            if extra:
                raise ReproError(f"{where}.fp32.{key}.{extra[0]}: not among the condition's {key}")
        conds.append(
            Condition(
                name=c["name"],
                dataset=str(c.get("dataset", "")),
                split=str(c.get("split", "")),
                encoder=str(c.get("encoder", "")),
                mode=str(c.get("mode", "")),
                tier=c.get("tier", "slow"),
                command=c["command"],
                output=c["output"],
                path=c["path"],
                expected={k: float(v) for k, v in c["expected"].items()},
                p_path=c.get("p_path"),
                p_expected={k: float(v) for k, v in (c.get("p_expected") or {}).items()},
                table=c.get("table"),
                row=c.get("row"),
                column=c.get("column"),
                expected_fp32={k: float(v) for k, v in (fp32.get("expected") or {}).items()},
                p_expected_fp32={k: float(v) for k, v in (fp32.get("p_expected") or {}).items()},
            )
        )
    return ReproTable(
        tuple(conds),
        float(data.get("tolerance", 0.0005)),
        float(data.get("p_tolerance", 0.01)),
        dict(data.get("tables") or {}),
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def run_conditions(conditions: Sequence[Condition], cwd: str | os.PathLike[str] = ".") -> dict[str, str]:
    """Run each distinct command once, in order, through ``bash -c``; returns command -> combined output.

    Raises:
        EsBiomedError: a command exits non-zero (its output's tail in the message).
    """
    done: dict[str, str] = {}
    for c in conditions:
        if c.command in done:
            continue
        proc = subprocess.run(
            ["bash", "-c", c.command], cwd=cwd, env=_env(), capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise EsBiomedError(f"{c.name}: `{c.command}` exited {proc.returncode}:\n{tail}")
        done[c.command] = proc.stdout
    return done


def _lookup(data: Any, dotted: str) -> Any:
    """Follow ``a.b.c`` through nested dicts; a key may itself contain dots only if it exists whole."""
    node = data
    rest = dotted
    while rest:
        if isinstance(node, dict) and rest in node:
            return node[rest]
        head, _, tail = rest.partition(".")
        if not isinstance(node, dict) or head not in node:
            raise KeyError(dotted)
        node, rest = node[head], tail
    return node


def actual(c: Condition, cwd: str | os.PathLike[str] = ".") -> tuple[dict[str, float], dict[str, float]]:
    """The metrics and p-values the condition's output file holds now."""
    data = json.loads((Path(cwd) / c.output).read_text())
    got = _lookup(data, c.path)
    metrics = {m: float(got[m]) for m in c.expected}
    ps: dict[str, float] = {}
    if c.p_path:
        tests = _lookup(data, c.p_path)
        ps = {m: float(tests[m]["p_value"]) for m in c.p_expected}
    return metrics, ps


def document_precision() -> str:
    """``"bf16"`` where this machine embeds documents in bf16 (the default encoder's OpenVINO variant compiled with
    bf16 precision: AMX / AVX512-BF16), else ``"fp32"`` (fp32 ONNX Runtime or torch: the same figures)."""
    from es_biomed.encode.loading import load_document_encoder

    return "bf16" if getattr(load_document_encoder("all-MiniLM-L6-v2"), "precision", "fp32") == "bf16" else "fp32"


def compare(
    table: ReproTable, conditions: Sequence[Condition], cwd: str | os.PathLike[str] = ".", precision: str = "bf16"
) -> list[str]:
    """Every drift beyond the tolerances, as ``"name: metric expected X, got Y"`` lines (empty: all reproduced);
    ``precision``: what the document vectors were embedded in (a condition's ``fp32`` figures apply to fp32)."""
    problems = []
    for c in conditions:
        try:
            got, ps = actual(c, cwd)
        except (OSError, KeyError, ValueError) as exc:
            problems.append(f"{c.name}: cannot read {c.path} from {c.output}: {exc!r}")
            continue
        expected, p_expected = c.wanted(precision)
        for m, want in expected.items():
            if abs(got[m] - want) > table.tolerance:
                problems.append(f"{c.name}: {m} expected {want:.4f}, got {got[m]:.4f}")
        for m, want in p_expected.items():
            if abs(ps[m] - want) > table.p_tolerance:
                problems.append(f"{c.name}: p-value of {m} expected {want:.4f}, got {ps[m]:.4f}")
    return problems


def _p(v: float | None) -> str:
    from es_biomed.eval.significance import format_p

    if v is None:
        return ""
    cell = format_p({"p_value": v})
    return f" (p{cell})" if cell.startswith("<") else f" (p={cell})"


def render_tables(table: ReproTable) -> dict[str, str]:
    """The Markdown of each table named by the conditions.

    A table's rows are its conditions' ``row`` labels (in order of first appearance); its columns are
    ``column`` × metric when conditions set ``column``, else the metrics. With ``tables[NAME].cells: column``
    the columns are the ``column`` labels alone and each condition's single metric fills its cell (the row label
    names the metric: a table whose rows mix NDCG@10 and MRR@10). A metric with a recorded p-value shows
    it beside the value; ``tables[NAME].labels`` renames metric columns. ``tables[NAME].paper: table9`` adds the BioMedBERT paper's Table 9 columns for rows
    labelled ``"<split>, top <k>"``.
    """
    from es_biomed.eval.table9 import PAPER_TABLE9, paper_value

    out: dict[str, str] = {}
    names = list(dict.fromkeys(c.table for c in table.conditions if c.table))
    for name in names:
        conds = [c for c in table.conditions if c.table == name]
        spec = table.tables.get(name, {})
        rows = list(dict.fromkeys(c.row or c.name for c in conds))
        by_column = spec.get("cells") == "column"
        if by_column:
            several = [c for c in conds if len(c.expected) != 1]
            if several:
                raise ReproError(
                    f"table {name}: cells: column needs one metric per condition; "
                    f"{several[0].name} has {len(several[0].expected)}"
                )
        cols: list[tuple[str | None, str]] = list(
            dict.fromkeys((c.column, "" if by_column else m) for c in conds for m in c.expected)
        )
        cell: dict[tuple[str, str | None, str], str] = {}
        for c in conds:
            for m, v in c.expected.items():
                cell[(c.row or c.name, c.column, "" if by_column else m)] = f"{v:.4f}{_p(c.p_expected.get(m))}"
        paper = spec.get("paper") == "table9"
        head = [spec.get("row_header", "run")]
        if paper:
            head += ["paper ES MRR@5", "paper ES+BioMedBERT MRR@5", "paper ES MRR@10", "paper ES+BioMedBERT MRR@10"]
        labels = spec.get("labels", {})
        head += [
            str(col) if by_column else f"{col} {labels.get(m, m)}" if col else labels.get(m, m) for col, m in cols
        ]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [r]
            if paper:
                k = re.search(r"top (\d+)", r)
                ref = PAPER_TABLE9.get(k.group(1)) if k else None
                for m in ("MRR@5", "MRR@10"):
                    cells += [paper_value(ref["ES"][m]), paper_value(ref["ES+BioMedBERT"][m])] if ref else ["", ""]
            cells += [cell.get((r, col, m), "") for col, m in cols]
            lines.append("| " + " | ".join(cells) + " |")
        commands = list(dict.fromkeys(c.command for c in conds))
        lines += ["", "<details><summary>commands</summary>", "", "```bash"] + commands + ["```", "", "</details>"]
        out[name] = "\n".join(lines)
    return out


_BLOCK = re.compile(r"<!-- repro:([\w.+@-]+) -->")


def table_pages(root: str | os.PathLike[str]) -> list[Path]:
    """The Markdown files that hold the generated tables: ``README.md`` and every page under ``docs/`` with a
    ``<!-- repro:NAME -->`` block, in path order.

    Example:
        >>> [str(p) for p in table_pages(".")]  # doctest: +SKIP
        ['README.md', 'docs/evaluation.md', 'docs/index.md', 'docs/models.md', 'docs/qa.md']
    """
    root = Path(root)
    pages = sorted(p for p in (root / "docs").rglob("*.md") if _BLOCK.search(p.read_text(encoding="utf-8")))
    return [root / "README.md", *pages]


def update_readme(
    readme: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], tables: Mapping[str, str], write: bool = True
) -> list[str]:
    """Replace each ``<!-- repro:NAME -->`` ... ``<!-- /repro:NAME -->`` block with its table.

    Args:
        readme: one Markdown file, or several (:func:`table_pages`): every table must have a block in at least one
            of them, and a table may have blocks in several (each is rewritten).
        tables: :func:`render_tables`' output, name -> Markdown.
        write: with False, change no file, only report.

    Returns:
        The names of the tables whose blocks changed (with ``write=False``: would change), in ``tables`` order.

    Raises:
        ReproError: a table has no block in any of the files, a block names no table, or a block is not closed.
    """
    paths = [Path(readme)] if isinstance(readme, (str, os.PathLike)) else [Path(p) for p in readme]
    texts = {p: p.read_text(encoding="utf-8") for p in paths}
    blocks = {p: set(_BLOCK.findall(text)) for p, text in texts.items()}
    missing = sorted(set(tables) - set().union(*blocks.values()))
    if missing:
        where = ", ".join(str(p) for p in paths)
        raise ReproError(f"{where}: no <!-- repro:{missing[0]} --> block for table {missing[0]!r}")
    for p in paths:
        orphans = sorted(blocks[p] - set(tables))
        if orphans:
            raise ReproError(f"{p}: block <!-- repro:{orphans[0]} --> names no table of the YAML")
    changed: set[str] = set()
    for p in paths:
        text = texts[p]
        for name in (n for n in tables if n in blocks[p]):
            pattern = re.compile(
                rf"(<!-- repro:{re.escape(name)} -->\n)(.*?)(<!-- /repro:{re.escape(name)} -->)", re.S
            )
            new, n = pattern.subn(lambda m, body=tables[name]: m.group(1) + body + "\n" + m.group(3), text)
            if n == 0:
                raise ReproError(f"{p}: block repro:{name} has no closing <!-- /repro:{name} -->")
            if new != text:
                changed.add(name)
                text = new
        if write and text != texts[p]:
            p.write_text(text, encoding="utf-8")
    return [n for n in tables if n in changed]
