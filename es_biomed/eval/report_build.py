"""``es-biomed report``: from raw corpora to ``report.md``, ``report.json``, plots and TREC run files.

:func:`build_report` indexes every entry of a :class:`~es_biomed.eval.report_config.ReportConfig` into an
embedded index, runs the BEIR protocol and the Table 9 protocol (and QA when configured), and writes into the
output directory:

* ``report.json``: every result, the Jaccard analyses, the config, the versions and the data hashes;
* ``report.md``: the same as tables (Table 9 beside the paper's numbers, with p-values), linking the plots;
* ``plots/jaccard.png`` (pair Jaccard distribution and MRR@10 by Jaccard bucket, per BioASQ entry) and
  ``plots/<entry>-delta.png`` (per-query NDCG@10, or MRR@10 for BioASQ, of bm25+rerank minus bm25, sorted);
* ``runs/<entry>/<run>.trec``: every run as a TREC run file.
"""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from es_biomed.eval.report_config import ReportConfig, ReportConfigError

__all__ = ["build_report", "report_markdown", "versions"]

_DISTRIBUTIONS = (
    "es-biomed",
    "tantivy",
    "numpy",
    "scipy",
    "matplotlib",
    "pytrec-eval-terrier",
    "torch",
    "transformers",
    "sentence-transformers",
    "onnxruntime",
    "openvino",
)


def versions() -> dict[str, str]:
    """Python and the installed versions of the distributions a report depends on (absent ones left out)."""
    out = {"python": platform.python_version()}
    for dist in _DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _hashes(cfg: ReportConfig) -> dict[str, str]:
    from es_biomed.models.files import sha256_file

    return {f: sha256_file(f) for f in cfg.input_files()}


def _index(cfg: ReportConfig, name: str) -> Path:
    return Path(cfg.index_dir) / name


def _all_pairs(base: Any, files: Any) -> Any:
    """``base`` (a thresholded BioASQ set) with the questions the rule dropped put back, their pairs all in
    ``ignore``: the Jaccard analysis then counts every pair and every question, while scoring sees the same
    judgements as Table 9."""
    from es_biomed.corpus.bioasq import load_bioasq
    from es_biomed.corpus.types import RetrievalSet

    full = load_bioasq(files, None)
    ignore = {q: {d for d in docs if d not in base.qrels.get(q, {})} for q, docs in full.qrels.items()}
    return RetrievalSet(
        corpus=full.corpus,
        queries=full.queries,
        qrels=base.qrels,
        ignore={q: d for q, d in ignore.items() if d},
        stats=base.stats,
    )


def _delta_plot(ds: Any, bm25: Any, rerank: Any, metric: str, path: Path, at: str = "") -> Path:
    """The sorted per-query ``metric`` difference of the rerank run against BM25 (``ds.ignore`` applied)."""
    from es_biomed.eval.metrics import per_query
    from es_biomed.eval.plots import plot_query_deltas

    base, system = (per_query(ds.qrels, run, [metric], ds.ignore) for run in (bm25, rerank))
    return plot_query_deltas(
        {q: v[metric] for q, v in base.items()},
        {q: v[metric] for q, v in system.items()},
        path,
        metric=metric,
        label=f"bm25+rerank{at} − bm25",
    )


def _check_index(index: Any, corpus: int, where: str) -> None:
    held = index.count() if hasattr(index, "count") else corpus
    if held != corpus:
        raise ReportConfigError(
            f"{where}: the index holds {held} documents but the corpus has {corpus}; entries that share an "
            "index must pool the same corpus (give this entry its own index, or delete the stale one)"
        )


def build_report(cfg: ReportConfig, output: str | Path, show_progress: bool = False) -> dict[str, Any]:
    """Index, evaluate and write the report (module docstring) into ``output``; returns ``report.json``'s data.

    Raises:
        ReportConfigError: entries sharing an index pool different corpora.
        RecordError: a bad record or a distractor id collision (see :mod:`es_biomed.eval.pool`).
    """
    from es_biomed.backends.embedded.index import EmbeddedIndex
    from es_biomed.corpus.bioasq import load_bioasq
    from es_biomed.encode.loading import load_document_encoder
    from es_biomed.eval.jaccard import DEFAULT_BUCKETS, DEFAULT_THRESHOLDS, jaccard_analysis
    from es_biomed.eval.plots import plot_jaccard
    from es_biomed.eval.protocols import beir_evaluation, table9_evaluation
    from es_biomed.query.presets import default_plan

    t0 = time.perf_counter()
    out = Path(output)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    thresholds = cfg.jaccard.get("thresholds", DEFAULT_THRESHOLDS)
    buckets = cfg.jaccard.get("buckets", DEFAULT_BUCKETS)
    sig = None if cfg.significance == "none" else cfg.significance
    report: dict[str, Any] = {
        "name": cfg.name,
        "config": cfg.to_dict(),
        "versions": versions(),
        "data_sha256": _hashes(cfg),
        "beir": {},
        "bioasq": {},
        "qa": None,
        "plots": {},
    }
    enc = load_document_encoder(cfg.encoder)
    plan = default_plan()
    analyses: dict[str, dict[str, Any]] = {}
    for b in cfg.beir:
        index = _index(cfg, b.index or b.name)
        ev = beir_evaluation(
            b.path,
            index,
            enc,
            plan,
            b.split,
            b.k,
            show_progress=show_progress,
            distractors=b.distractors,
            run_output=out / "runs" / b.name,
            significance=sig,
            n_resamples=cfg.n_resamples,
        )
        _check_index(EmbeddedIndex(index), len(ev.ds.corpus), f"beir entry {b.name!r}")
        delta = _delta_plot(
            ev.ds, ev.runs["bm25"], ev.runs["bm25+rerank"], "NDCG@10", out / "plots" / f"{b.name}-delta.png"
        )
        jac = jaccard_analysis(
            ev.ds,
            {n: ev.runs[n] for n in ("bm25", "bm25+rerank")},
            thresholds,
            buckets,
            metric="NDCG@10",
        )
        report["beir"][b.name] = {**ev.result, "jaccard": jac}
        analyses[f"{b.name} (BEIR)"] = jac
        report["plots"][f"{b.name}-delta"] = str(delta.relative_to(out))
    for e in cfg.bioasq:
        base = load_bioasq(e.files, e.jaccard)
        index = _index(cfg, e.index or e.name)
        ev = table9_evaluation(
            base,
            index,
            enc,
            plan,
            e.windows,
            show_progress,
            e.distractors,
            out / "runs" / e.name,
            sig,
            cfg.n_resamples,
            files=list(e.files),
        )
        _check_index(EmbeddedIndex(index), len(ev.ds.corpus), f"bioasq entry {e.name!r}")
        w = e.windows[0]
        runs = {"bm25": ev.runs["bm25"], "bm25+cosine": ev.runs[f"bm25+cosine@{w}"]}
        runs["bm25+rerank"] = ev.runs[f"bm25+rerank@{w}"]
        jac = jaccard_analysis(
            _all_pairs(base, e.files), runs, thresholds, buckets, "MRR@10", scoring_ignore=ev.ds.ignore
        )
        jac["window"] = w
        analyses[e.name] = jac
        delta = _delta_plot(
            ev.ds, runs["bm25"], runs["bm25+rerank"], "MRR@10", out / "plots" / f"{e.name}-delta.png", f"@{w}"
        )
        report["bioasq"][e.name] = {**ev.result, "jaccard": jac}
        report["plots"][f"{e.name}-delta"] = str(delta.relative_to(out))
    if analyses:
        jp = plot_jaccard(
            analyses,
            out / "plots" / "jaccard.png",
            threshold=cfg.bioasq[0].jaccard if cfg.bioasq else 0.30,
            runs=("bm25", "bm25+cosine", "bm25+rerank"),
        )
        report["plots"]["jaccard"] = str(jp.relative_to(out))
    if cfg.qa is not None:
        from es_biomed.eval.qa_e2e import evaluate_qa
        from es_biomed.qa.loading import load_reader

        report["qa"] = evaluate_qa(
            list(cfg.qa.files),
            str(_index(cfg, cfg.qa.index or "qa")),
            enc,
            load_reader(cfg.qa.reader),
            passages=cfg.qa.passages,
            k=cfg.qa.k,
            max_questions=cfg.qa.max_questions,
            show_progress=show_progress,
        )
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (out / "report.md").write_text(report_markdown(report))
    return report


def _jaccard_tables(name: str, jac: dict[str, Any]) -> list[str]:
    q = jac["distribution"]["quantiles"]
    lines = [
        f"**{name}**: {jac['pairs']} judged pairs; Jaccard median {_f(q['median'])}, p90 {_f(q['p90'])}, "
        f"max {_f(q['max'])}.",
        "",
        "| threshold | pairs removed (J > t) | questions left without a pair |",
        "|---|---|---|",
    ]
    lines += [f"| {t} | {r['pairs']} | {r['questions']} |" for t, r in jac["removed"].items()]
    lines += ["", "| Jaccard bucket (max over kept pairs) | queries | " + " | ".join(jac["runs"]) + " |"]
    lines.append("|---|---|" + "---|" * len(jac["runs"]))
    for label, row in jac["by_bucket"].items():
        lines.append(f"| {label} | {row['queries']} | " + " | ".join(_f(row.get(r)) for r in jac["runs"]) + " |")
    lines.append(
        f"\n({jac['metric']} per bucket" + (f"; re-sorts at k = {jac['window']})" if "window" in jac else ")")
    )
    return lines


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.4f}"


def report_markdown(report: dict[str, Any]) -> str:
    """``report.md`` from :func:`build_report`'s data."""
    from es_biomed.eval.report import beir_markdown, bioasq_markdown

    lines = [f"# es-biomed evaluation report: {report['name']}", ""]
    enc = None
    for section in ("beir", "bioasq"):
        for res in report[section].values():
            enc = enc or res["config"]["encoder"]["name"]
    lines += [f"Encoder: `{enc}`. Built in {report.get('seconds', '?')} s.", ""]
    for name, res in report["beir"].items():
        cfg = res["config"]
        lines += [f"## BEIR: {name} ({cfg['split']}: {cfg['queries']} queries, {cfg['documents']} documents)", ""]
        lines += [beir_markdown(res), f"![per-query NDCG@10 difference]({report['plots'][name + '-delta']})", ""]
        lines += _jaccard_tables(name, res["jaccard"]) + [""]
    if report["bioasq"]:
        lines += ["## BioASQ: the paper's Table 9", ""]
        lines.append(
            "bm25+cosine is the paper's method (a pure cosine re-sort of BM25's top k); bm25+rerank is the tuned "
            "plan. Gains are relative to bm25; p is a paired test against bm25 over questions."
        )
        lines.append("")
    for name, res in report["bioasq"].items():
        lines += [f"### {name}", "", bioasq_markdown(res)]
        lines += [f"![per-query MRR@10 difference]({report['plots'][name + '-delta']})", ""]
    if "jaccard" in report["plots"]:
        lines += ["## The Jaccard debiasing", "", f"![Jaccard]({report['plots']['jaccard']})", ""]
    if report["bioasq"]:
        for name, res in report["bioasq"].items():
            lines += _jaccard_tables(name, res["jaccard"]) + [""]
    if report.get("qa"):
        from es_biomed.eval.qa_e2e import qa_markdown

        lines += ["## Question answering (the paper's Table 8 layout)", "", qa_markdown(report["qa"]), ""]
    lines += ["## Versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["versions"].items()]
    lines += ["", "## Data (sha256)", "", "| file | sha256 |", "|---|---|"]
    lines += [f"| {k} | `{v[:16]}…` |" for k, v in report["data_sha256"].items()]
    lines += ["", "## Config", "", "```json", json.dumps(report["config"], indent=2), "```", ""]
    return "\n".join(lines)
