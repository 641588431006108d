"""``es-biomed eval beir`` and ``eval bioasq`` (``eval qa`` lives in :mod:`es_biomed.cli.qa`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from es_biomed.cli.support import (
    MODES,
    backend_option,
    cluster_backend,
    distractors_option,
    expand_paths,
    fail,
    handled_errors,
    load_encoder_for,
    require_index,
    run_output_option,
    significance_option,
)


# --------------------------------------------------------------------------------------------------- eval
@click.group(name="eval")
def eval_group() -> None:
    """Evaluate retrieval quality."""


def _write_result(result: dict[str, Any], output: str, markdown: str) -> None:
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown)


def _eval_target(backend: str, index_path: str | None, encoder: Any) -> Any:
    require_index(backend, index_path)
    if backend == "embedded":
        return index_path
    es = cluster_backend(index_path, backend)
    es.setup(encoder.info)
    return es


@eval_group.command(name="beir")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--split", default="test", show_default=True)
@click.option(
    "--index",
    "index_path",
    type=click.Path(),
    help="Embedded: index directory (the corpus is indexed there if needed). ES: alias.",
)
@backend_option
@click.option(
    "--output", required=True, type=click.Path(), help="Result JSON (a Markdown table is written beside it)."
)
@click.option("--encoder", default=None, help="Encoder name or path (default: the index's, else all-MiniLM-L6-v2).")
@click.option("-k", "k", type=int, default=100, show_default=True, help="Run depth.")
@click.option("--window", type=int, default=None, help="Rescore window (default: preset).")
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice([m for m in MODES if m != "hybrid_rerank"]),
    help="Evaluate only this search mode (repeatable; default: bm25, rerank, dense, hybrid, and rerank_ce when "
    "--cross-encoder is given).",
)
@click.option("--cross-encoder", default=None, help="Cross-encoder name or directory for --mode rerank_ce.")
@click.option(
    "--ce-window", type=int, default=None, help="rerank_ce: how many rescored hits it re-sorts (default 20)."
)
@click.option("--ce-weight", type=float, default=None, help="rerank_ce: cross-encoder weight in [0, 1] (default 1).")
@distractors_option
@run_output_option
@significance_option
@click.option("--no-progress", is_flag=True)
def eval_beir(
    directory: str,
    split: str,
    index_path: str | None,
    backend: str,
    output: str,
    encoder: str | None,
    k: int,
    window: int | None,
    modes: tuple[str, ...],
    cross_encoder: str | None,
    ce_window: int | None,
    ce_weight: float | None,
    distractors: tuple[str, ...],
    run_output: str | None,
    significance: str,
    no_progress: bool,
) -> None:
    """BEIR-style evaluation: NDCG@10, Recall@100 and MRR@10 for bm25, bm25+rerank, dense and hybrid (and
    bm25+rerank+ce, the cross-encoder stage, with --cross-encoder)."""
    from es_biomed.eval.protocols import BEIR_RUNS, CE_RUN, evaluate_beir
    from es_biomed.eval.report import beir_markdown
    from es_biomed.query.presets import default_plan

    if "rerank_ce" in modes and not cross_encoder:
        raise click.UsageError("--mode rerank_ce needs --cross-encoder NAME")
    run_of = {mode: name for name, mode in BEIR_RUNS.items()} | {"rerank_ce": CE_RUN}
    overrides = {
        key: val
        for key, val in (("window_size", window), ("ce_window", ce_window), ("ce_weight", ce_weight))
        if val is not None
    }
    pool = expand_paths(distractors, "--distractors")
    try:
        enc = load_encoder_for(encoder, index_path if backend == "embedded" else None)
        plan = default_plan(**overrides)
        target = _eval_target(backend, index_path, enc)
        runs = [run_of[m] for m in modes] if modes else None
        if backend != "embedded" and not target.capabilities().scripts:
            runs = [r for r in (runs or [*BEIR_RUNS, *([CE_RUN] if cross_encoder else [])]) if "rerank" not in r]
            click.echo(f"note: {target.engine} has no lang-painless module: the rerank runs are not run", err=True)
        result = evaluate_beir(
            directory,
            target,
            enc,
            plan,
            split=split,
            k=k,
            show_progress=not no_progress,
            modes=runs,
            cross_encoder=cross_encoder,
            distractors=pool,
            run_output=run_output,
            significance=None if significance == "none" else significance,
        )
        result["config"]["backend"] = backend
    except handled_errors() as exc:
        raise fail(exc) from exc
    md = beir_markdown(result)
    _write_result(result, output, md)
    click.echo(md, nl=False)


@eval_group.command(name="bioasq")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--index", "index_path", type=click.Path(), help="Embedded: index for the contexts of FILES. ES: alias.")
@backend_option
@click.option(
    "--output", required=True, type=click.Path(), help="Result JSON (a Markdown table is written beside it)."
)
@click.option("--encoder", default=None, help="Encoder name or path (default: the index's, else all-MiniLM-L6-v2).")
@click.option("--windows", default="20,30,40,50", show_default=True, help="Comma-separated rerank windows (top-k).")
@click.option(
    "--jaccard",
    type=float,
    default=0.30,
    show_default=True,
    help="Remove question/context pairs with Jaccard overlap above this.",
)
@distractors_option
@run_output_option
@significance_option
@click.option("--no-progress", is_flag=True)
def eval_bioasq(
    files: tuple[str, ...],
    index_path: str | None,
    backend: str,
    output: str,
    encoder: str | None,
    windows: str,
    jaccard: float,
    distractors: tuple[str, ...],
    run_output: str | None,
    significance: str,
    no_progress: bool,
) -> None:
    """The BioMedBERT paper's Table 9: MRR@5 / MRR@10 of bm25, bm25+cosine (the paper's method: a pure cosine
    re-sort of the top k) and bm25+rerank (the tuned plan) on BioASQ, with their gains over bm25 and p-values,
    beside the paper's own numbers."""
    from es_biomed.eval.protocols import evaluate_bioasq
    from es_biomed.eval.report import bioasq_markdown
    from es_biomed.query.presets import default_plan

    try:
        ws = [int(w) for w in windows.split(",") if w.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated integers, got {windows!r}", param_hint="--windows"
        ) from None
    try:
        enc = load_encoder_for(encoder, index_path if backend == "embedded" else None)
        target = _eval_target(backend, index_path, enc)
        result = evaluate_bioasq(
            list(files),
            target,
            enc,
            default_plan(),
            windows=ws,
            threshold=jaccard,
            show_progress=not no_progress,
            distractors=expand_paths(distractors, "--distractors"),
            run_output=run_output,
            significance=None if significance == "none" else significance,
        )
        result["config"]["backend"] = backend
    except handled_errors() as exc:
        raise fail(exc) from exc
    md = bioasq_markdown(result)
    _write_result(result, output, md)
    click.echo(md, nl=False)
