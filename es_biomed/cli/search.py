"""``es-biomed index`` and ``es-biomed search``: fill an index, and search it through the one
:class:`~es_biomed.search.Searcher`, on every engine."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from es_biomed.cli.support import (
    EXIT_REJECTED,
    MODES,
    backend_option,
    cluster_backend,
    emit,
    fail,
    format_option,
    handled_errors,
    load_encoder_for,
    require_index,
)

__all__ = ["index", "search"]


# --------------------------------------------------------------------------------------------------- index
@click.command()
@click.argument("corpus", type=click.Path(exists=True))
@click.option(
    "--index", "index_path", type=click.Path(), help="Embedded: index directory (created if missing). ES: alias."
)
@backend_option
@format_option
@click.option("--encoder", default=None, help="Encoder name or model directory (default: all-MiniLM-L6-v2).")
@click.option(
    "--on-error",
    type=click.Choice(["raise", "quarantine"]),
    default="raise",
    show_default=True,
    help="Stop at a bad record, or quarantine it and go on.",
)
@click.option(
    "--rejects",
    type=click.Path(),
    default=None,
    help="Quarantine file (default: INDEX/rejects.jsonl, or ./rejects.jsonl for ES).",
)
@click.option("--batch-size", type=int, default=256, show_default=True, help="Documents per write batch.")
@click.option(
    "--commit-every",
    type=click.IntRange(min=1),
    default=None,
    help="Embedded: commit after this many written documents (default: every batch; a crash loses at most one).",
)
@click.option(
    "--commit-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Embedded: also commit when this many seconds have passed since the last commit.",
)
@click.option(
    "--ann",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Embedded: the ANN graph for dense and hybrid search (auto: built once the index holds 50,000 vector rows; "
    "needs the ann extra).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def index(
    corpus: str,
    index_path: str | None,
    backend: str,
    fmt: str | None,
    encoder: str | None,
    on_error: str,
    rejects: str | None,
    batch_size: int,
    commit_every: int | None,
    commit_interval: float | None,
    ann: str,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Index CORPUS (BEIR dir, BREATHE JSONL, CORD-19 metadata.csv, BioASQ SQuAD JSON)."""
    require_index(backend, index_path)
    from es_biomed.corpus.readers import iter_documents
    from es_biomed.corpus.records import RejectSink

    try:
        enc = load_encoder_for(encoder, None)
        if backend == "embedded":
            from es_biomed.ingest import index_corpus

            report = index_corpus(
                corpus,
                index_path,
                enc,
                fmt=fmt,
                on_error=on_error,
                rejects_path=rejects,  # type: ignore[arg-type]
                batch_size=batch_size,
                show_progress=not no_progress,
                commit_every=commit_every,
                commit_interval=commit_interval,
                ann=ann,
            )
            summary = (
                f"indexed {report.written} new or changed, {report.unchanged} unchanged, {report.rejected} rejected "
                f"of {report.read + report.rejected} records in {report.seconds:.1f}s; index {index_path} holds {report.total_docs} documents"
            )
            out, rejected, rejects_path = report.to_dict(), report.rejected, report.rejects_path
        else:
            es = cluster_backend(index_path, backend)
            sink = RejectSink(rejects or "rejects.jsonl") if on_error == "quarantine" else None
            try:
                docs = iter_documents(corpus, fmt, on_error=on_error, sink=sink)  # type: ignore[arg-type]
                bulk = es.index_documents(docs, enc, batch_size=batch_size)
            finally:
                if sink is not None:
                    sink.close()
            rejected = sink.count if sink else 0
            rejects_path = str(sink.path) if sink and sink.count else None
            out = {
                **bulk.to_dict(),
                "alias": es.alias,
                "rejected": rejected,
                "rejects_path": rejects_path,
                "total_docs": es.count(),
            }
            summary = (
                f"indexed {bulk.ok} documents into {es.alias}, {len(bulk.failed)} failed in the cluster, {rejected} rejected "
                f"in {bulk.seconds:.1f}s; {es.alias} holds {out['total_docs']} documents"
            )
            for f in bulk.failed[:10]:
                summary += f"\n  failed {f['id']}: {f['status']} {f['error']}"
            rejected += len(bulk.failed)
    except handled_errors() as exc:
        raise fail(exc) from exc
    if rejects_path:
        summary += f"\nrejected records: {rejects_path}"
    emit(out, as_json, summary)
    if rejected:
        sys.exit(EXIT_REJECTED)


# --------------------------------------------------------------------------------------------------- search
@click.command()
@click.argument("query")
@click.option(
    "--index", "index_path", type=click.Path(), help="Embedded: index directory. ES: alias (default es-biomed)."
)
@backend_option
@click.option("-k", "k", type=int, default=10, show_default=True, help="Number of hits.")
@click.option(
    "--window", type=int, default=None, help="Rescore window: how many BM25 hits are reranked (default: preset)."
)
@click.option("--no-rerank", is_flag=True, help="BM25 only.")
@click.option("--hybrid", is_flag=True, help="Hybrid mode (RRF of BM25 and kNN); same as --mode hybrid.")
@click.option("--mode", type=click.Choice(MODES), default=None, help="Search mode (default: rerank).")
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
@click.option(
    "--cross-encoder",
    default=None,
    help="--mode rerank_ce: cross-encoder name or model directory (ES: its rerank inference endpoint).",
)
@click.option(
    "--ce-window", type=int, default=None, help="--mode rerank_ce: how many rescored hits it re-sorts (default 20)."
)
@click.option(
    "--ce-weight",
    type=float,
    default=None,
    help="--mode rerank_ce: weight of the cross-encoder score in [0, 1] (default 1: cross-encoder order only).",
)
@click.option(
    "--print-request", is_flag=True, help="Print the _search body that would be sent, as JSON; contact no cluster."
)
@click.option(
    "--dialect",
    type=click.Choice(["elasticsearch", "opensearch"]),
    default=None,
    help="With --print-request: the engine whose body is printed (default: opensearch for --backend opensearch, "
    "else elasticsearch).",
)
@click.option(
    "--passages/--no-passages",
    default=True,
    show_default=True,
    help="ES: score the best nested passage (vs the document vector).",
)
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
@click.option(
    "--exact",
    is_flag=True,
    help="Embedded: score dense kNN by an exact scan even where the index keeps an ANN graph.",
)
def search(
    query: str,
    index_path: str | None,
    backend: str,
    k: int,
    window: int | None,
    no_rerank: bool,
    hybrid: bool,
    mode: str | None,
    score_mode: str | None,
    query_weight: float | None,
    rescore_query_weight: float | None,
    sources: tuple[str, ...],
    year_from: int | None,
    year_to: int | None,
    encoder: str | None,
    cross_encoder: str | None,
    ce_window: int | None,
    ce_weight: float | None,
    print_request: bool,
    dialect: str | None,
    passages: bool,
    as_json: bool,
    exact: bool,
) -> None:
    """Search for QUERY."""
    from es_biomed.query import Filters
    from es_biomed.query.presets import default_plan

    chosen = [m for m in (mode, "bm25" if no_rerank else None, "hybrid" if hybrid else None) if m]
    if len(set(chosen)) > 1:
        raise click.UsageError(f"conflicting modes: {', '.join(chosen)}")
    overrides: dict[str, Any] = {"k": k, "mode": chosen[0] if chosen else "rerank"}
    for key, val in (
        ("window_size", window),
        ("score_mode", score_mode),
        ("query_weight", query_weight),
        ("rescore_query_weight", rescore_query_weight),
        ("cross_encoder", cross_encoder),
        ("ce_window", ce_window),
        ("ce_weight", ce_weight),
    ):
        if val is not None:
            overrides[key] = val
    try:
        if sources or year_from is not None or year_to is not None:
            overrides["filters"] = Filters(tuple(sources), year_from, year_to)
        plan = default_plan(query, **overrides)
        if print_request:
            from es_biomed.query.es_compile import compile_search

            vec = (
                None
                if plan.mode == "bm25"
                else [
                    float(x)
                    for x in load_encoder_for(
                        encoder, index_path if backend == "embedded" else None, queries=True
                    ).encode_queries([query])[0]
                ]
            )
            dialect = dialect or ("opensearch" if backend == "opensearch" else "elasticsearch")
            body = compile_search(plan, vec, dialect=dialect, passages=passages)  # type: ignore[arg-type]
            click.echo(json.dumps(body, indent=2))
            return
        require_index(backend, index_path)
        from es_biomed.search import Searcher

        if backend == "embedded":
            from es_biomed.backends.embedded.index import EmbeddedIndex

            engine: Any = EmbeddedIndex(index_path, vector_search="exact" if exact else "auto")
        else:
            engine = cluster_backend(index_path, backend)
        if backend != "embedded":
            engine.passages = passages
        results = Searcher(engine, encoder, plan).run(plan, with_sources=True)
    except handled_errors() as exc:
        raise fail(exc) from exc
    if as_json:
        payload = {
            "query": query,
            "mode": plan.mode,
            "backend": backend,
            "plan": plan_json(plan),  # what ran: a client can reproduce the ranking without reading presets.json
            "took_ms": round(results.took_ms, 3),
            "hits": results.to_json(),
        }
        if backend == "embedded" and plan.mode in ("dense", "hybrid", "hybrid_rerank"):
            payload["vector_search"] = engine.vector_search_info()  # ANN or exact, and why
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    for rank, hit in enumerate(results.hits, start=1):
        src = results.sources.get(hit.doc_id, {})
        title = src.get("title") or (src.get("abstract", "")[:100] + "...")
        click.echo(f"{rank:>3}. {hit.score:9.4f}  {hit.doc_id}  {title}")
    if not results.hits:
        click.echo("no hits")


def plan_json(plan: Any) -> dict[str, Any]:
    """The plan's settings as JSON (the query itself is beside it): window, weights, score mode, fields, filters."""
    import dataclasses

    out = dataclasses.asdict(plan)
    out.pop("query", None)
    out["fields"] = dict(plan.fields)
    return out
