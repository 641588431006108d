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
from pathlib import Path
from typing import Any

import click

from es_biomed.qa.cli import ask, qa_eval
from es_biomed.serve.cli import serve

EXIT_REJECTED = 3
BACKENDS = ("embedded", "es", "opensearch")
CLUSTER_ENGINES = {"es": "elasticsearch", "opensearch": "opensearch"}
MODES = ("bm25", "rerank", "dense", "hybrid", "hybrid_rerank")


def _fail(exc: BaseException) -> click.ClickException:
    return click.ClickException(str(exc))


def _errors() -> tuple[type[BaseException], ...]:
    from es_biomed.errors import EsBiomedError

    errors: list[type[BaseException]] = [EsBiomedError, ValueError, OSError]
    try:
        import elasticsearch

        errors.append(elasticsearch.ApiError)
        errors.append(elasticsearch.TransportError)
    except ImportError:
        pass
    try:
        import opensearchpy

        errors.append(opensearchpy.OpenSearchException)
    except ImportError:
        pass
    try:  # broker unreachable (ingest commands)
        import kombu.exceptions
        import redis.exceptions

        errors += [redis.exceptions.RedisError, kombu.exceptions.OperationalError]
    except ImportError:
        pass
    return tuple(errors)


def _load_encoder(name: str | None, index_path: str | None = None, queries: bool = False) -> Any:
    """The encoder named, or the one recorded in an existing embedded index, or the default; run on the fastest
    variant with the same identity: for ``queries`` the fp32 ONNX export where one is on disk (no torch import),
    for documents the bf16 (OpenVINO) or fp32 ONNX export, made on first use."""
    from es_biomed.backends.embedded import EmbeddedIndex
    from es_biomed.encode.registry import load_document_encoder, load_query_encoder

    if name is None and index_path and EmbeddedIndex.exists(index_path):
        name = EmbeddedIndex(index_path).encoder_info["name"]
    return load_query_encoder(name) if queries else load_document_encoder(name)


def _es_backend(alias: str | None, backend: str = "es") -> Any:
    """A cluster backend (``es`` or ``opensearch``) configured from the environment, after checking that the
    server answers and is that engine (credentials never printed)."""
    from es_biomed.backends.cluster import ClusterBackend, ClusterConfig

    cfg = ClusterConfig.from_env(engine=CLUSTER_ENGINES.get(backend, backend), alias=alias)
    return ClusterBackend.connect(cfg)


def _require_index(backend: str, index_path: str | None) -> None:
    if backend == "embedded" and not index_path:
        raise click.UsageError("--index PATH is required with the embedded backend")


def _emit(obj: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False) if as_json else text)


backend_option = click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="embedded",
    show_default=True,
    help="Embedded engine, Elasticsearch or OpenSearch.",
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
@click.option(
    "--rejects",
    type=click.Path(),
    default=None,
    help="Quarantine file (default: INDEX/rejects.jsonl, or ./rejects.jsonl for ES).",
)
@click.option("--batch-size", type=int, default=256, show_default=True, help="Documents per write batch.")
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
    ):
        if val is not None:
            overrides[key] = val
    if sources or year_from is not None or year_to is not None:
        overrides["filters"] = Filters(tuple(sources), year_from, year_to)
    try:
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
            from es_biomed.searcher import Searcher

            searcher = Searcher(index_path, encoder, plan)  # type: ignore[arg-type]
            vec = searcher.encoder.encode_queries([query])[0] if plan.mode != "bm25" else None
            results = searcher.index.search(plan, vec, with_sources=True)
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
    from es_biomed.encode.registry import load_encoder

    try:
        enc = load_encoder(name, backend="onnx")
        variants = json.loads((enc.model_dir / "es_biomed_onnx.json").read_text()).get("variants", {})
    except (*_errors(), OSError, ValueError) as exc:
        raise _fail(exc) from exc
    click.echo(f"{name}: ONNX export in {enc.model_dir}")
    for variant, rec in variants.items():
        same = "the same identity" if rec.get("fingerprint") == enc.fingerprint else "its own identity"
        click.echo(f"  {variant}: {rec.get('file')} fingerprint {rec.get('fingerprint')} ({same})")


# --------------------------------------------------------------------------------------------------- eval
@main.group(name="eval")
def eval_group() -> None:
    """Evaluate retrieval quality."""


def _write_result(result: dict[str, Any], output: str, markdown: str) -> None:
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown)


def _eval_target(backend: str, index_path: str | None, encoder: Any) -> Any:
    _require_index(backend, index_path)
    if backend == "embedded":
        return index_path
    es = _es_backend(index_path, backend)
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
    no_progress: bool,
) -> None:
    """BEIR-style evaluation: NDCG@10, Recall@100 and MRR@10 for bm25, bm25+rerank, dense and hybrid."""
    from es_biomed.eval.protocols import evaluate_beir
    from es_biomed.eval.report import beir_markdown
    from es_biomed.query.presets import default_plan

    try:
        enc = _load_encoder(encoder, index_path if backend == "embedded" else None)
        plan = default_plan(**({"window_size": window} if window else {}))
        target = _eval_target(backend, index_path, enc)
        modes = None
        if backend != "embedded" and not target.capabilities().scripts:
            modes = ("bm25", "dense", "hybrid")
            click.echo(f"note: {target.engine} has no lang-painless module: bm25+rerank is not run", err=True)
        result = evaluate_beir(
            directory, target, enc, plan, split=split, k=k, show_progress=not no_progress, modes=modes
        )
        result["config"]["backend"] = backend
    except _errors() as exc:
        raise _fail(exc) from exc
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
@click.option("--no-progress", is_flag=True)
def eval_bioasq(
    files: tuple[str, ...],
    index_path: str | None,
    backend: str,
    output: str,
    encoder: str | None,
    windows: str,
    jaccard: float,
    no_progress: bool,
) -> None:
    """The BioMedBERT paper's Table 9: MRR@5 / MRR@10 of BM25 and BM25 + rerank on BioASQ."""
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
        enc = _load_encoder(encoder, index_path if backend == "embedded" else None)
        target = _eval_target(backend, index_path, enc)
        result = evaluate_bioasq(
            list(files), target, enc, default_plan(), windows=ws, threshold=jaccard, show_progress=not no_progress
        )
        result["config"]["backend"] = backend
    except _errors() as exc:
        raise _fail(exc) from exc
    md = bioasq_markdown(result)
    _write_result(result, output, md)
    click.echo(md, nl=False)


# --------------------------------------------------------------------------------------------------- es / opensearch
def _cluster_group(backend: str, engine: str, env: str, start: str) -> click.Group:
    """The administration group of one engine: ``setup``, ``status``, ``reindex`` (same code for both)."""

    @click.group(
        name=backend,
        help=f"{engine} cluster administration (connection from {env}_URL, {env}_USERNAME / "
        f"{env}_PASSWORD or {env}_API_KEY, {env}_CA_CERTS). `{start}` starts a local node.",
    )
    def group() -> None:
        pass

    @group.command(name="setup")
    @click.option("--index", "alias", default=None, help=f"Alias (default: {env}_ALIAS or es-biomed).")
    @click.option(
        "--encoder",
        default=None,
        help="Encoder whose dims and identity the mapping records (default: all-MiniLM-L6-v2).",
    )
    @click.option(
        "--index-options",
        default=None,
        help='Vector index options as JSON, e.g. \'{"type": "hnsw", "m": 32, "ef_construction": 200}\'.',
    )
    @click.option(
        "--analyzer",
        type=click.Choice(["english", "standard"]),
        default=None,
        help="Analyzer of the text fields (default: english where the cluster has analysis-common, else standard).",
    )
    @click.option(
        "--pipeline-model-id",
        default=None,
        help="Also install the in-cluster embedding pipeline for this eland-uploaded model id (Elasticsearch ML).",
    )
    @click.option(
        "--kibana-url",
        default=None,
        envvar="KIBANA_URL",
        help="Also import the Kibana saved objects (docker/kibana/es-biomed.ndjson).",
    )
    def setup(
        alias: str | None,
        encoder: str | None,
        index_options: str | None,
        analyzer: str | None,
        pipeline_model_id: str | None,
        kibana_url: str | None,
    ) -> None:
        """Install the index template and search template, and create the first index behind the alias."""
        try:
            opts = json.loads(index_options) if index_options else None
            enc = _load_encoder(encoder)
            es = _es_backend(alias, backend)
            result = es.setup(enc.info, index_options=opts, pipeline_model_id=pipeline_model_id, analyzer=analyzer)
            if kibana_url:
                from es_biomed.backends.kibana import default_ndjson_path, import_saved_objects

                cfg = es.config
                result["kibana"] = import_saved_objects(
                    kibana_url,
                    default_ndjson_path(),
                    api_key=cfg.api_key,
                    username=cfg.username,
                    password=cfg.password,
                    ca_certs=cfg.ca_certs,
                )
        except (json.JSONDecodeError, *_errors()) as exc:
            raise _fail(exc) from exc
        click.echo(json.dumps(result, indent=2))

    @group.command(name="status")
    @click.option("--index", "alias", default=None, help=f"Alias (default: {env}_ALIAS or es-biomed).")
    def status(alias: str | None) -> None:
        """Show the engine, the alias, its indices with document counts, the encoder, and installed templates."""
        try:
            click.echo(json.dumps(_es_backend(alias, backend).status(), indent=2))
        except _errors() as exc:
            raise _fail(exc) from exc

    @group.command(name="reindex")
    @click.option("--index", "alias", default=None, help=f"Alias (default: {env}_ALIAS or es-biomed).")
    @click.option("--encoder", default=None, help="The index's encoder (default: all-MiniLM-L6-v2).")
    @click.option("--delete-old", is_flag=True, help="Delete the previous index after the alias swap.")
    @click.option("--force", is_flag=True, help="Do not ask for confirmation.")
    def reindex(alias: str | None, encoder: str | None, delete_old: bool, force: bool) -> None:
        """Copy the alias's index into the next version with the current template (a server-side task, polled)
        and swap the alias atomically."""
        try:
            es = _es_backend(alias, backend)
            old = es.indices()
            if not force:
                what = f"reindex {es.alias} ({', '.join(old) or 'no index'}) into a new version" + (
                    " and DELETE the old index" if delete_old else ""
                )
                click.confirm(what + "?", abort=True)
            result = es.reindex(_load_encoder(encoder).info, delete_old=delete_old)
        except _errors() as exc:
            raise _fail(exc) from exc
        click.echo(json.dumps(result, indent=2))

    return group


main.add_command(_cluster_group("es", "Elasticsearch", "ES", "make elasticsearch"))
main.add_command(_cluster_group("opensearch", "OpenSearch", "OPENSEARCH", "make opensearch"))


# --------------------------------------------------------------------------------------------------- ingest
@main.group(name="ingest")
def ingest_group() -> None:
    """Ingest at scale with Celery workers on a Redis broker (``BROKER_URL``, default redis://127.0.0.1:6379/0).

    Start workers with ``celery -A workers.app worker -Q es-biomed`` (one process per core); for the embedded
    engine, also one writer: ``celery -A workers.app worker -Q es-biomed-write --concurrency 1``.
    """


def _app() -> Any:
    from es_biomed.ingest.queue import make_app

    return make_app()


def _print_status(st: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(st.to_dict(), indent=2))
        return
    rate = f"{st.docs_per_s:.1f} docs/s" if st.docs_per_s else "n/a docs/s"
    eta = f"ETA {st.eta_s:.0f}s" if st.eta_s is not None else "ETA n/a"
    click.echo(
        f"job {st.job}: {st.done}/{st.batches} batches done, {st.failed} failed, {st.running} running, "
        f"{st.pending} pending; {st.documents} documents written, {st.rejected} records quarantined; {rate}, {eta}"
    )
    for f in st.failures[:10]:
        click.echo(f"  failed batch {f['batch']} ({f['file']} from line {f['first_line']}): {f['error']}")


@ingest_group.command(name="submit")
@click.argument("corpus", type=click.Path(exists=True))
@click.option(
    "--backend",
    type=click.Choice(["local", "embedded", "es"]),
    default="local",
    show_default=True,
    help="local (= embedded engine, written by the single writer queue) or es (each worker bulk-writes).",
)
@click.option("--index", "index_path", default=None, help="local: index directory (required). es: alias.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["beir", "breathe", "cord19", "bioasq"]),
    default=None,
    help="Corpus format (guessed if omitted).",
)
@click.option("--encoder", default=None, help="Encoder name or path, as the workers see it (default: the index's).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Records per batch (one task each).")
@click.option("--job-id", default=None, help="Job id (default: random).")
@click.option("--wait", is_flag=True, help="Wait until every batch is done or failed, printing progress.")
@click.option("--json", "as_json", is_flag=True)
def ingest_submit(
    corpus: str,
    backend: str,
    index_path: str | None,
    fmt: str | None,
    encoder: str | None,
    batch_size: int,
    job_id: str | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Cut CORPUS into batches by reference (file plus byte or record range) and queue them."""
    from es_biomed.ingest.jobs import Target, submit_job

    backend = "local" if backend == "embedded" else backend
    try:
        if backend == "local":
            if not index_path:
                raise click.UsageError("--index PATH is required with --backend local")
            index_path = str(Path(index_path).resolve())
            if encoder is None:
                from es_biomed.backends.embedded import EmbeddedIndex

                if EmbeddedIndex.exists(index_path):
                    encoder = str(EmbeddedIndex(index_path).encoder_info["name"])
        else:
            from es_biomed.backends.es_mappings import ALIAS

            index_path = index_path or os.environ.get("ES_ALIAS") or ALIAS
        from es_biomed.encode.registry import DEFAULT_ENCODER

        target = Target(backend, index_path, encoder or DEFAULT_ENCODER)  # type: ignore[arg-type]
        app = _app()
        job = submit_job(app, corpus, target, fmt=fmt, batch_size=batch_size, job_id=job_id)  # type: ignore[arg-type]
    except _errors() as exc:
        raise _fail(exc) from exc
    if as_json and not wait:
        click.echo(json.dumps({"job": job.id, "batches": len(job.batches), "target": target.__dict__}))
    else:
        click.echo(f"job {job.id}: {len(job.batches)} batches of {corpus} queued for {target.backend}:{target.index}")
    if wait:
        _wait(app, job.id, as_json)


def _wait(app: Any, job_id: str, as_json: bool, interval: float = 2.0) -> None:
    import time

    from es_biomed.ingest.jobs import job_status

    last = None
    while True:
        st = job_status(app, job_id)
        if st.finished:
            break
        progress = (st.done, st.failed, st.running, st.pending)
        if not as_json and progress != last:  # one line per change, not per poll
            _print_status(st, False)
            last = progress
        time.sleep(interval)
    _print_status(st, as_json)
    if st.failed:
        raise click.ClickException(
            f"{st.failed} batches failed; resubmit them with `es-biomed ingest retry-failed {job_id}`"
        )
    if st.rejected:
        sys.exit(EXIT_REJECTED)


@ingest_group.command(name="status")
@click.argument("job_id", required=False)
@click.option(
    "--rejects", "show_rejects", is_flag=True, help="List the quarantined records (file, line, field, error)."
)
@click.option("--wait", is_flag=True, help="Wait until the job is finished.")
@click.option("--json", "as_json", is_flag=True)
def ingest_status(job_id: str | None, show_rejects: bool, wait: bool, as_json: bool) -> None:
    """Batches done, failed, running and pending, documents per second and ETA of JOB_ID (default: the latest)."""
    from es_biomed.ingest.jobs import DeadLetterStore, job_status, latest_job_id

    try:
        app = _app()
        job_id = job_id or latest_job_id(app)
        if wait:
            _wait(app, job_id, as_json)
            return
        st = job_status(app, job_id)
        _print_status(st, as_json)
        if show_rejects:
            for rec in DeadLetterStore(app.backend.client, job_id).records():
                click.echo(json.dumps(rec, ensure_ascii=False))
    except _errors() as exc:
        raise _fail(exc) from exc


@ingest_group.command(name="retry-failed")
@click.argument("job_id")
def ingest_retry_failed(job_id: str) -> None:
    """Resubmit the failed batches of JOB_ID."""
    from es_biomed.ingest.jobs import retry_failed

    try:
        numbers = retry_failed(_app(), job_id)
    except _errors() as exc:
        raise _fail(exc) from exc
    click.echo(
        f"job {job_id}: resubmitted {len(numbers)} failed batches {numbers}"
        if numbers
        else f"job {job_id}: no failed batches"
    )


main.add_command(serve)
main.add_command(ask)
eval_group.add_command(qa_eval)

if __name__ == "__main__":  # pragma: no cover
    main()
