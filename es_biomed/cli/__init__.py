"""The ``es-biomed`` command line: ``index``, ``search``, ``eval``, ``es`` and ``ingest``.

The CLI parses arguments and calls library functions; heavy modules are imported inside each command so
``es-biomed --help`` stays fast. Exit codes: 0 success, 1 error, 3 records were rejected (quarantined).

Backends: ``--backend embedded`` (default; ``--index`` is a directory), ``--backend es`` (Elasticsearch;
connection from ``ES_URL``, ``ES_API_KEY`` or ``ES_USERNAME``/``ES_PASSWORD``, ``ES_CA_CERTS``) or
``--backend opensearch`` (``OPENSEARCH_URL``, ``OPENSEARCH_USERNAME``/``OPENSEARCH_PASSWORD``,
``OPENSEARCH_CA_CERTS``); for a cluster ``--index`` names the alias, default ``es-biomed``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from es_biomed.cli.maintenance import check, compact, repair
from es_biomed.cli.qa import ask, qa_eval
from es_biomed.cli.serve import serve
from es_biomed.cli.support import (  # noqa: F401 (re-exported: the command modules and tests import them here)
    BACKENDS,
    CLUSTER_ENGINES,
    EXIT_REJECTED,
    MODES,
    _emit,
    _errors,
    _es_backend,
    _fail,
    _load_encoder,
    _require_index,
    backend_option,
    format_option,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="es-biomed")
def main() -> None:
    """Biomedical literature search: BM25 retrieval plus cosine rerank with a biomedical encoder."""
    # transformers imports TensorFlow whenever it is installed (2.6 s here), though the torch backend never
    # needs it and the TF backend does not go through transformers. The CLI exports no TF model, so it opts
    # out; library users (and the TF exporter) keep transformers' default.
    os.environ.setdefault("USE_TF", "0")


# --------------------------------------------------------------------------------------------------- index
@main.command()
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
    as_json: bool,
    no_progress: bool,
) -> None:
    """Index CORPUS (BEIR dir, BREATHE JSONL, CORD-19 metadata.csv, BioASQ SQuAD JSON)."""
    _require_index(backend, index_path)
    from es_biomed.corpus.readers import RejectSink, iter_documents

    try:
        enc = _load_encoder(encoder, None)
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
            )
            summary = (
                f"indexed {report.written} new or changed, {report.unchanged} unchanged, {report.rejected} rejected "
                f"of {report.read + report.rejected} records in {report.seconds:.1f}s; index {index_path} holds {report.total_docs} documents"
            )
            out, rejected, rejects_path = report.to_dict(), report.rejected, report.rejects_path
        else:
            es = _es_backend(index_path, backend)
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
    except _errors() as exc:
        raise _fail(exc) from exc
    if rejects_path:
        summary += f"\nrejected records: {rejects_path}"
    _emit(out, as_json, summary)
    if rejected:
        sys.exit(EXIT_REJECTED)


# --------------------------------------------------------------------------------------------------- search
@main.command()
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
    default="elasticsearch",
    show_default=True,
    help="With --print-request.",
)
@click.option(
    "--passages/--no-passages",
    default=True,
    show_default=True,
    help="ES: score the best nested passage (vs the document vector).",
)
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
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
    dialect: str,
    passages: bool,
    as_json: bool,
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
                    for x in _load_encoder(
                        encoder, index_path if backend == "embedded" else None, queries=True
                    ).encode_queries([query])[0]
                ]
            )
            body = compile_search(plan, vec, dialect=dialect, passages=passages)  # type: ignore[arg-type]
            click.echo(json.dumps(body, indent=2))
            return
        _require_index(backend, index_path)
        if backend == "embedded":
            from es_biomed.search.searcher import Searcher

            searcher = Searcher(index_path, encoder, plan)  # type: ignore[arg-type]
            results = searcher.search(query, k=plan.k, with_sources=True)
        else:
            es = _es_backend(index_path, backend)
            es.passages = passages
            vec = None
            if plan.mode != "bm25":
                enc = _load_encoder(encoder, queries=True)
                es.check_encoder(enc.info)
                vec = enc.encode_queries([query])[0]
            results = es.search(plan, vec, with_sources=True)
    except _errors() as exc:
        raise _fail(exc) from exc
    if as_json:
        payload = {
            "query": query,
            "mode": plan.mode,
            "backend": backend,
            "took_ms": round(results.took_ms, 3),
            "hits": results.to_json(),
        }
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    for rank, hit in enumerate(results.hits, start=1):
        src = results.sources.get(hit.doc_id, {})
        title = src.get("title") or (src.get("abstract", "")[:100] + "...")
        click.echo(f"{rank:>3}. {hit.score:9.4f}  {hit.doc_id}  {title}")
    if not results.hits:
        click.echo("no hits")


# --------------------------------------------------------------------------------------------------- export
@main.group(name="export")
def export_group() -> None:
    """Export an encoder to another runtime."""


@export_group.command(name="onnx")
@click.argument("name", default="all-MiniLM-L6-v2")
def export_onnx_cmd(name: str) -> None:
    """Export the registered torch encoder NAME to ONNX (fp32, int8; bf16 on OpenVINO) into the cache, once.

    Needs torch. Afterwards `es-biomed index` embeds on the bf16 variant (OpenVINO) and `es-biomed search` encodes
    queries on ONNX Runtime fp32, neither importing torch: both carry NAME's identity, because fp32 matched torch
    within 1e-4 and bf16 matched fp32 within 5e-3 when they were measured here.
    """
    from es_biomed.encode.loading import load_encoder

    try:
        enc = load_encoder(name, backend="onnx")
        variants = json.loads((enc.model_dir / "es_biomed_onnx.json").read_text()).get("variants", {})
    except (*_errors(), OSError, ValueError) as exc:
        raise _fail(exc) from exc
    click.echo(f"{name}: ONNX export in {enc.model_dir}")
    for variant, rec in variants.items():
        same = "the same identity" if rec.get("fingerprint") == enc.fingerprint else "its own identity"
        click.echo(f"  {variant}: {rec.get('file')} fingerprint {rec.get('fingerprint')} ({same})")


@export_group.command(name="eland")
@click.argument("model")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--task-type",
    type=click.Choice(["text_embedding", "text_similarity"]),
    default="text_embedding",
    show_default=True,
    help="eland task type: an encoder (text_embedding) or a cross-encoder directory (text_similarity).",
)
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Mapping or index template whose dense_vector dims the model must match (mappings/templates/es-biomed.json).",
)
@click.option("--dims", type=int, default=None, help="Dims the model must produce (e.g. those of an existing index).")
@click.option(
    "--es-version", default="9.2.0", show_default=True, help="Elasticsearch version eland writes the config for."
)
@click.option("--es-model-id", default=None, help="Model id for the upload command (default: the encoder's name).")
def export_eland_cmd(
    model: str,
    out: str,
    task_type: str,
    mapping: str | None,
    dims: int | None,
    es_version: str,
    es_model_id: str | None,
) -> None:
    """Trace MODEL (a registered encoder or cross-encoder, or a model directory) with eland's pinned torch into OUT: the
    TorchScript model, config.json and vocabulary.json that eland uploads to Elasticsearch's machine learning, checked
    against es-biomed's own encoder within 1e-4 first. Needs the eland environment (`make eland-env`); docs/eland.md.
    """
    from es_biomed.export.eland import export_eland

    try:
        parts = [int(p) for p in es_version.split(".")]
        if len(parts) != 3:
            raise ValueError(f"--es-version {es_version!r}: expected MAJOR.MINOR.PATCH, e.g. 9.2.0")
        res = export_eland(
            model,
            out,
            task_type=task_type,  # type: ignore[arg-type] (click.Choice: one of the Literal's values)
            mapping=mapping,
            dims=dims,
            es_version=(parts[0], parts[1], parts[2]),
            es_model_id=es_model_id,
        )
    except _errors() as exc:
        raise _fail(exc) from exc
    dims_text = f"{res.dims} dims, " if res.dims else ""
    click.echo(
        f"{model}: eland {res.task_type} model in {res.out} ({dims_text}torch {res.torch_version}, eland {res.eland_version})"
    )
    click.echo(f"  parity with es-biomed: max abs diff {res.parity:.2e}; manifest {res.manifest}")
    click.echo(f"  upload: {res.upload_command}")


# --------------------------------------------------------------------------------------------------- the other groups
from es_biomed.cli.cluster import es_group, opensearch_group  # noqa: E402 (after main: the groups register on it)
from es_biomed.cli.eval import eval_group  # noqa: E402
from es_biomed.cli.ingest import ingest_group  # noqa: E402
from es_biomed.cli.models import models_group  # noqa: E402
from es_biomed.cli.report import report  # noqa: E402

main.add_command(eval_group)
main.add_command(es_group)
main.add_command(opensearch_group)
main.add_command(ingest_group)
main.add_command(models_group)
main.add_command(serve)
main.add_command(check)
main.add_command(repair)
main.add_command(compact)
main.add_command(ask)
main.add_command(report)
eval_group.add_command(qa_eval)

if __name__ == "__main__":  # pragma: no cover
    main()
