"""The ``es-biomed serve`` command (registered in :mod:`es_biomed.cli`)."""

from __future__ import annotations

import ipaddress

import click

__all__ = ["serve", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--index", "index_path", required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind. The service has no authentication: bind elsewhere only behind a proxy.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--encoder", default=None, help="Query encoder; must match the index's (default: the index's).")
@click.option("--reader", default="biomed-qa", show_default=True, help="Extractive QA model of /ask.")
@click.option("--passages", type=click.IntRange(1, 200), default=20, show_default=True, help="Passages read by /ask.")
@click.option("--no-qa", is_flag=True, help="Do not load the QA model (/ask answers 503).")
@click.option(
    "--exact", is_flag=True, help="Score dense kNN by an exact scan even where the index keeps an ANN graph."
)
@click.option(
    "--batch-wait-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help=(
        "Batch the query encodings of concurrent searches into shared encoder calls (try 2): under load a batch "
        "waits at most this many milliseconds for more queries; a lone query on an idle service never waits. "
        "0 disables batching: each search encodes its own query, which is faster where the encoder runs on a CPU "
        "(measured on 2 cores: batching lowered throughput); batching pays where batched calls are cheaper."
    ),
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
def serve(
    index_path: str,
    host: str,
    port: int,
    encoder: str | None,
    reader: str,
    passages: int,
    no_qa: bool,
    exact: bool,
    batch_wait_ms: float,
    log_level: str,
) -> None:
    """Serve the search API, /ask and the search page for the embedded index at --index.

    The model is loaded once at startup; searches run in a worker thread pool, each encoding its own query
    (or in shared batches, with --batch-wait-ms). There is no authentication:
    the default binds 127.0.0.1 only. Put the service behind an authenticating reverse proxy before binding
    another address with --host.
    """
    try:
        import uvicorn

        from es_biomed.serve.app import create_app
    except ImportError as exc:
        raise click.ClickException(
            f"es-biomed serve needs the serve extra ({exc.name or exc} is missing): pip install 'es-biomed[serve]'"
        ) from exc
    from es_biomed.backends.embedded.index import EmbeddedIndex

    if not EmbeddedIndex.exists(index_path):
        raise click.ClickException(f"no es-biomed index at {index_path}; create it with `es-biomed index`")
    if not is_loopback(host):
        click.echo(
            f"warning: binding {host}: es-biomed serve has no authentication; anyone who can reach this address "
            "can query the index. Put it behind an authenticating reverse proxy.",
            err=True,
        )
    from es_biomed.errors import EsBiomedError
    from es_biomed.serve.app import load_state

    # loaded once, before the server starts: a bad index or encoder is a one-line error, not a failed lifespan
    try:
        state = load_state(index_path, encoder=encoder, qa=not no_qa, reader=reader, passages=passages, exact=exact)
    except (EsBiomedError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if state.qa_error and not no_qa:
        click.echo(f"warning: /ask is not available: {state.qa_error}", err=True)
    app = create_app(state=state, batch_wait_ms=batch_wait_ms)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
