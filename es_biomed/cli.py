"""The ``es-biomed`` command line: ``index``, ``search`` and ``eval``.

The CLI parses arguments and calls library functions; heavy modules are imported inside each command so
``es-biomed --help`` stays fast. Exit codes: 0 success, 1 error, 3 records were rejected (quarantined).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

EXIT_REJECTED = 3


def _fail(exc: BaseException) -> click.ClickException:
    return click.ClickException(str(exc))


def _load_encoder(name: str | None, index_path: str | None = None) -> Any:
    """The encoder named, or the one recorded in an existing index, or the default."""
    from es_biomed.backends.embedded import EmbeddedIndex
    from es_biomed.encode import load_encoder

    if name is None and index_path and EmbeddedIndex.exists(index_path):
        name = EmbeddedIndex(index_path).encoder_info["name"]
    return load_encoder(name)


def _emit(obj: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False) if as_json else text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="es-biomed")
def main() -> None:
    """Biomedical literature search: BM25 retrieval plus cosine rerank with a biomedical encoder."""
    # transformers imports TensorFlow whenever it is installed (2.6 s here), though the torch backend never
    # needs it and the TF backend does not go through transformers. The CLI exports no TF model, so it opts
    # out; library users (and the TF exporter) keep transformers' default.
    os.environ.setdefault("USE_TF", "0")


@main.command()
@click.argument("corpus", type=click.Path(exists=True))
@click.option(
    "--index", "index_path", required=True, type=click.Path(), help="Embedded index directory (created if missing)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["beir", "breathe", "cord19", "bioasq"]),
    default=None,
    help="Corpus format (guessed if omitted).",
)
@click.option("--encoder", default=None, help="Encoder name or model directory (default: all-MiniLM-L6-v2).")
@click.option(
    "--on-error",
    type=click.Choice(["raise", "quarantine"]),
    default="raise",
    show_default=True,
    help="Stop at a bad record, or quarantine it and go on.",
)
@click.option("--rejects", type=click.Path(), default=None, help="Quarantine file (default: INDEX/rejects.jsonl).")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Documents per write batch.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def index(
    corpus: str,
    index_path: str,
    fmt: str | None,
    encoder: str | None,
    on_error: str,
    rejects: str | None,
    batch_size: int,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Index CORPUS (BEIR dir, BREATHE JSONL, CORD-19 metadata.csv, BioASQ SQuAD JSON)."""
    from es_biomed.errors import EsBiomedError
    from es_biomed.ingest import index_corpus

    try:
        enc = _load_encoder(encoder, None)
        report = index_corpus(
            corpus,
            index_path,
            enc,
            fmt=fmt,
            on_error=on_error,
            rejects_path=rejects,
            batch_size=batch_size,
            show_progress=not no_progress,  # type: ignore[arg-type]
        )
    except (EsBiomedError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    summary = (
        f"indexed {report.written} new or changed, {report.unchanged} unchanged, {report.rejected} rejected "
        f"of {report.read + report.rejected} records in {report.seconds:.1f}s; index {index_path} holds {report.total_docs} documents"
    )
    if report.rejected:
        summary += f"\nrejected records: {report.rejects_path}"
    _emit(report.to_dict(), as_json, summary)
    if report.rejected:
        sys.exit(EXIT_REJECTED)


@main.command()
@click.argument("query")
@click.option("--index", "index_path", required=True, type=click.Path(), help="Embedded index directory.")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Number of hits.")
@click.option(
    "--window", type=int, default=None, help="Rescore window: how many BM25 hits are reranked (default: preset)."
)
@click.option("--no-rerank", is_flag=True, help="BM25 only.")
@click.option(
    "--mode",
    type=click.Choice(["bm25", "rerank", "dense", "hybrid"]),
    default=None,
    help="Search mode (default: rerank).",
)
@click.option(
    "--score-mode",
    type=click.Choice(["total", "multiply", "avg", "max", "min"]),
    default=None,
    help="How BM25 and cosine combine.",
)
@click.option("--query-weight", type=float, default=None)
@click.option("--rescore-query-weight", type=float, default=None)
@click.option("--source", "sources", multiple=True, help="Keep only this source (repeatable).")
@click.option("--year-from", type=int, default=None)
@click.option("--year-to", type=int, default=None)
@click.option("--encoder", default=None, help="Query encoder; must match the index's (default: the index's).")
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
def search(
    query: str,
    index_path: str,
    k: int,
    window: int | None,
    no_rerank: bool,
    mode: str | None,
    score_mode: str | None,
    query_weight: float | None,
    rescore_query_weight: float | None,
    sources: tuple[str, ...],
    year_from: int | None,
    year_to: int | None,
    encoder: str | None,
    as_json: bool,
) -> None:
    """Search the index for QUERY."""
    from es_biomed.errors import EsBiomedError
    from es_biomed.query import Filters
    from es_biomed.query.presets import default_plan
    from es_biomed.searcher import Searcher

    if no_rerank and mode not in (None, "bm25"):
        raise click.UsageError("--no-rerank conflicts with --mode " + str(mode))
    overrides: dict[str, Any] = {"k": k, "mode": "bm25" if no_rerank else (mode or "rerank")}
    for key, val in (
        ("window_size", window),
        ("score_mode", score_mode),
        ("query_weight", query_weight),
        ("rescore_query_weight", rescore_query_weight),
    ):
        if val is not None:
            overrides[key] = val
    if sources or year_from is not None or year_to is not None:
        overrides["filters"] = Filters(tuple(sources), year_from, year_to)
    try:
        plan = default_plan(query, **overrides)
        searcher = Searcher(index_path, encoder, plan)
        results = searcher.index.search(
            plan, searcher.encoder.encode_queries([query])[0] if plan.mode != "bm25" else None, with_sources=True
        )
    except (EsBiomedError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(
            json.dumps(
                {"query": query, "mode": plan.mode, "took_ms": round(results.took_ms, 3), "hits": results.to_json()},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    for rank, hit in enumerate(results.hits, start=1):
        src = results.sources.get(hit.doc_id, {})
        title = src.get("title") or (src.get("abstract", "")[:100] + "...")
        click.echo(f"{rank:>3}. {hit.score:9.4f}  {hit.doc_id}  {title}")
    if not results.hits:
        click.echo("no hits")


@main.group(name="eval")
def eval_group() -> None:
    """Evaluate retrieval quality."""


def _write_result(result: dict[str, Any], output: str, markdown: str) -> None:
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown)


@eval_group.command(name="beir")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--split", default="test", show_default=True)
@click.option(
    "--index",
    "index_path",
    required=True,
    type=click.Path(),
    help="Embedded index (the corpus is indexed there if needed).",
)
@click.option(
    "--output", required=True, type=click.Path(), help="Result JSON (a Markdown table is written beside it)."
)
@click.option("--encoder", default=None, help="Encoder name or path (default: the index's, else all-MiniLM-L6-v2).")
@click.option("-k", "k", type=int, default=100, show_default=True, help="Run depth.")
@click.option("--window", type=int, default=None, help="Rescore window (default: preset).")
@click.option("--no-progress", is_flag=True)
def eval_beir(
    directory: str,
    split: str,
    index_path: str,
    output: str,
    encoder: str | None,
    k: int,
    window: int | None,
    no_progress: bool,
) -> None:
    """BEIR-style evaluation: NDCG@10, Recall@100 and MRR@10 for bm25, bm25+rerank, dense and hybrid."""
    from es_biomed.errors import EsBiomedError
    from es_biomed.eval.protocols import evaluate_beir
    from es_biomed.eval.report import beir_markdown
    from es_biomed.query.presets import default_plan

    try:
        enc = _load_encoder(encoder, index_path)
        plan = default_plan(**({"window_size": window} if window else {}))
        result = evaluate_beir(directory, index_path, enc, plan, split=split, k=k, show_progress=not no_progress)
    except (EsBiomedError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    md = beir_markdown(result)
    _write_result(result, output, md)
    click.echo(md, nl=False)


@eval_group.command(name="bioasq")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--index", "index_path", required=True, type=click.Path(), help="Embedded index for the contexts of FILES."
)
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
@click.option("--no-progress", is_flag=True)
def eval_bioasq(
    files: tuple[str, ...],
    index_path: str,
    output: str,
    encoder: str | None,
    windows: str,
    jaccard: float,
    no_progress: bool,
) -> None:
    """The BioMedBERT paper's Table 9: MRR@5 / MRR@10 of BM25 and BM25 + rerank on BioASQ."""
    from es_biomed.errors import EsBiomedError
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
        enc = _load_encoder(encoder, index_path)
        result = evaluate_bioasq(
            list(files), index_path, enc, default_plan(), windows=ws, threshold=jaccard, show_progress=not no_progress
        )
    except (EsBiomedError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    md = bioasq_markdown(result)
    _write_result(result, output, md)
    click.echo(md, nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
