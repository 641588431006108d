"""What the ``es-biomed`` command modules share: error mapping, encoder and cluster loading, common options."""

from __future__ import annotations

import json
from typing import Any

import click

from es_biomed.corpus.formats import CORPUS_FORMATS

EXIT_REJECTED = 3
BACKENDS = ("embedded", "es", "opensearch")
CLUSTER_ENGINES = {"es": "elasticsearch", "opensearch": "opensearch"}
MODES = ("bm25", "rerank", "dense", "hybrid", "hybrid_rerank", "rerank_ce")


def fail(exc: BaseException) -> click.ClickException:
    return click.ClickException(str(exc))


def handled_errors() -> tuple[type[BaseException], ...]:
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


def load_encoder_for(name: str | None, index_path: str | None = None, queries: bool = False) -> Any:
    """The encoder named, or the one recorded in an existing embedded index, or the default; run on the fastest
    variant with the same identity: for ``queries`` the fp32 ONNX export where one is on disk (no torch import),
    for documents the bf16 (OpenVINO) or fp32 ONNX export, made on first use."""
    from es_biomed.backends.embedded.index import EmbeddedIndex
    from es_biomed.encode.loading import load_document_encoder, load_query_encoder

    if name is None and index_path and EmbeddedIndex.exists(index_path):
        name = EmbeddedIndex(index_path).encoder_info["name"]
    return load_query_encoder(name) if queries else load_document_encoder(name)


def cluster_backend(alias: str | None, backend: str = "es") -> Any:  # the CLI's name for connect_cluster
    """A cluster backend (``es`` or ``opensearch``) configured from the environment, after checking that the
    server answers and is that engine (credentials never printed)."""
    from es_biomed.backends.cluster import connect_cluster

    return connect_cluster(backend, alias)


def require_index(backend: str, index_path: str | None) -> None:
    if backend == "embedded" and not index_path:
        raise click.UsageError("--index PATH is required with the embedded backend")


def emit(obj: Any, as_json: bool, text: str) -> None:
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
    """:func:`es_biomed.corpus.readers.expand_paths` for a repeatable option: a bad value is a usage error."""
    from es_biomed.corpus.readers import expand_paths as expand

    try:
        return expand(values)
    except FileNotFoundError as exc:
        raise click.BadParameter(str(exc), param_hint=param) from None


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
