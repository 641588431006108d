"""``es-biomed es ...`` and ``es-biomed opensearch ...``: one administration group per engine."""

from __future__ import annotations

import json

import click

from es_biomed.cli.support import (
    cluster_backend,
    fail,
    format_option,
    handled_errors,
    load_encoder_for,
)


# --------------------------------------------------------------------------------------------------- es / opensearch
def _cluster_group(backend: str, engine: str, env: str, start: str) -> click.Group:
    """The administration group of one engine: ``setup``, ``status``, ``reindex`` (same code for both)."""

    @click.group(
        name=backend,
        help=f"{engine} cluster administration (connection from {env}_URL: one URL or several nodes' URLs, "
        f"comma-separated; {env}_USERNAME / {env}_PASSWORD or {env}_API_KEY, {env}_CA_CERTS). `{start}` starts a "
        f"local node, `{start}-cluster` a local 3-node cluster.",
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
        "--shards",
        type=click.IntRange(min=1),
        default=None,
        help="Primary shards of each index (template setting; default: 1).",
    )
    @click.option(
        "--replicas",
        type=click.IntRange(min=0),
        default=None,
        help="Replicas of each shard (template setting; default: auto_expand_replicas 0-1). A warning names the "
        "numbers when the cluster has too few data nodes to hold them (the index stays yellow).",
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
        shards: int | None,
        replicas: int | None,
        pipeline_model_id: str | None,
        kibana_url: str | None,
    ) -> None:
        """Install the index template and search template, and create the first index behind the alias."""
        try:
            opts = json.loads(index_options) if index_options else None
            enc = load_encoder_for(encoder)
            es = cluster_backend(alias, backend)
            result = es.setup(
                enc.info,
                index_options=opts,
                pipeline_model_id=pipeline_model_id,
                analyzer=analyzer,
                shards=shards,
                replicas=replicas,
            )
            if kibana_url:
                from es_biomed.kibana import default_ndjson_path, import_saved_objects

                cfg = es.config
                result["kibana"] = import_saved_objects(
                    kibana_url,
                    default_ndjson_path(),
                    api_key=cfg.api_key,
                    username=cfg.username,
                    password=cfg.password,
                    ca_certs=cfg.ca_certs,
                )
        except (json.JSONDecodeError, *handled_errors()) as exc:
            raise fail(exc) from exc
        click.echo(json.dumps(result, indent=2))

    @group.command(name="status")
    @click.option("--index", "alias", default=None, help=f"Alias (default: {env}_ALIAS or es-biomed).")
    def status(alias: str | None) -> None:
        """Show the engine, the alias, its indices with document counts, the encoder, and installed templates."""
        try:
            click.echo(json.dumps(cluster_backend(alias, backend).status(), indent=2))
        except handled_errors() as exc:
            raise fail(exc) from exc

    @group.command(name="reindex")
    @click.option("--index", "alias", default=None, help=f"Alias (default: {env}_ALIAS or es-biomed).")
    @click.option(
        "--encoder",
        default=None,
        help="The index's encoder (default: all-MiniLM-L6-v2); with --corpus, the NEW encoder to embed with.",
    )
    @click.option(
        "--corpus",
        type=click.Path(exists=True),
        default=None,
        help="Change the encoder with zero downtime: embed CORPUS with --encoder into the next version, then swap.",
    )
    @format_option
    @click.option("--delete-old", is_flag=True, help="Delete the previous index after the alias swap.")
    @click.option("--force", is_flag=True, help="Do not ask for confirmation.")
    def reindex(
        alias: str | None, encoder: str | None, corpus: str | None, fmt: str | None, delete_old: bool, force: bool
    ) -> None:
        """Copy the alias's index into the next version with the current template (a server-side task, polled)
        and swap the alias atomically. With --corpus, build the next version with another encoder instead (the
        corpus embedded again), then swap: searches never stop, and none mixes the two encoders."""
        try:
            es = cluster_backend(alias, backend)
            old = es.indices()
            if not force:
                how = f"re-embed {corpus} with {encoder or 'the default encoder'} into" if corpus else "reindex into"
                what = f"{how} a new version of {es.alias} ({', '.join(old) or 'no index'})" + (
                    " and DELETE the old index" if delete_old else ""
                )
                click.confirm(what + "?", abort=True)
            if corpus:
                from es_biomed.corpus.readers import iter_documents

                result = es.reembed(iter_documents(corpus, fmt), load_encoder_for(encoder), delete_old=delete_old)  # type: ignore[arg-type]
            else:
                result = es.reindex(load_encoder_for(encoder).info, delete_old=delete_old)
        except handled_errors() as exc:
            raise fail(exc) from exc
        click.echo(json.dumps(result, indent=2))

    return group


es_group = _cluster_group("es", "Elasticsearch", "ES", "make elasticsearch")
opensearch_group = _cluster_group("opensearch", "OpenSearch", "OPENSEARCH", "make opensearch")
