"""What the ``es-biomed`` command modules share: error mapping, encoder and cluster loading, common options."""

from __future__ import annotations

import json
from typing import Any

import click

from es_biomed.corpus.readers import CORPUS_FORMATS

EXIT_REJECTED = 3
BACKENDS = ("embedded", "es", "opensearch")
CLUSTER_ENGINES = {"es": "elasticsearch", "opensearch": "opensearch"}
MODES = ("bm25", "rerank", "dense", "hybrid", "hybrid_rerank", "rerank_ce")


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


format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(list(CORPUS_FORMATS)),
    default=None,
    help="Corpus format (guessed if omitted).",
)


def expand_paths(values: tuple[str, ...] | list[str], param: str) -> list[str]:
    """Expand the values of a repeatable path option: a value with ``*``, ``?`` or ``[`` is a glob pattern
    (expanded here, sorted, so it may be quoted against the shell); every path must exist."""
    import glob

    out: list[str] = []
    for v in values:
        if any(c in v for c in "*?["):
            hits = sorted(glob.glob(v))
            if not hits:
                raise click.BadParameter(f"{v!r} matches no file", param_hint=param)
            out.extend(hits)
        else:
            from pathlib import Path

            if not Path(v).exists():
                raise click.BadParameter(f"{v!r} does not exist", param_hint=param)
            out.append(v)
    return out


distractors_option = click.option(
    "--distractors",
    multiple=True,
    metavar="CORPUS",
    help="Add this corpus's documents to the retrieval corpus without making them relevant (repeatable; any "
    "supported format; a quoted glob such as '../shared/data/bioasq/*_golden.json' is expanded).",
)
run_output_option = click.option(
    "--run-output",
    type=click.Path(file_okay=False),
    default=None,
    help="Write every run as a TREC run file (qid Q0 docid rank score tag) into this directory.",
)
significance_option = click.option(
    "--significance",
    type=click.Choice(["randomization", "t-test", "none"]),
    default="randomization",
    show_default=True,
    help="Paired test of every run against bm25 over queries (p-values in the table).",
)
