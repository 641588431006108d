"""Write what eland uploads to Elasticsearch's machine learning (a TorchScript model, its config and vocabulary) for
an es-biomed encoder (``text_embedding``) or a cross-encoder directory (``text_similarity``), and prove it offline.

Elasticsearch runs uploaded models in its own libtorch, so the file is traced with the torch that eland pins
(eland 9.2: ``torch==2.7.1``, the libtorch of Elasticsearch 9.2), in a separate environment ``.venv-eland`` built by
``make eland-env`` from ``requirements/eland.txt``. This module runs in the main environment: it resolves the
model, checks the directory and the mapping's vector dims, hands the directory to the helper script
``eland_trace.py`` run by the eland environment's python (eland's ``TransformerModel(...).save()``, nothing
quantized; the saved file reloaded with ``torch.jit.load`` and run on probe texts), then compares the probe outputs
with es-biomed's own encoder (or, for ``text_similarity``, the Hugging Face model's logits) in this environment.

The output directory holds:

* ``traced_pytorch_model.pt``: eland's traced, frozen TorchScript model;
* ``config.json``: the trained-model configuration eland sends (``PUT _ml/trained_models/<id>``);
* ``vocabulary.json``: the tokenizer's vocabulary as eland sends it;
* ``es_biomed_eland.json``: task type, source model, versions, dims, the parity measured and the upload command.

``text_embedding`` models are traced with sentence-transformers' modules as eland wraps them, so a model whose
``modules.json`` has a ``Normalize`` module (all-MiniLM-L6-v2, biomed-minilm) returns unit-norm vectors in the
cluster; the manifest records whether it did (``"normalized"``). Parity is measured like for like: both sides
L2-normalized (es-biomed's vectors always are), max abs difference per component.

Example:
    >>> from es_biomed.export.eland_export import export_eland
    >>> export_eland("all-MiniLM-L6-v2", "exports/minilm-eland").parity  # doctest: +SKIP
    3.2e-07
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from es_biomed.encode.base import read_pooling_config
from es_biomed.errors import EsBiomedError, MissingDependencyError, require
from es_biomed.models.cache import ModelNotFetchedError
from es_biomed.models.catalog import Kind, known, lookup, resolve
from es_biomed.models.files import write_text_atomic
from es_biomed.models.model_dir import missing_model_files, num_labels, read_model_config

__all__ = [
    "ELAND_PYTHON_ENV",
    "MANIFEST_FILENAME",
    "PARITY_TOLERANCE",
    "PROBE_PAIRS",
    "ElandExport",
    "ElandExportError",
    "TaskType",
    "export_eland",
    "find_eland_python",
    "mapping_dims",
    "model_output_dims",
    "resolve_model_dir",
    "validate_model_dir",
]

log = logging.getLogger(__name__)

TaskType = Literal["text_embedding", "text_similarity"]
TASK_TYPES: tuple[str, ...] = ("text_embedding", "text_similarity")
#: Manifest written beside eland's files.
MANIFEST_FILENAME = "es_biomed_eland.json"
#: Environment variable naming the eland environment's python (default ``.venv-eland/bin/python``).
ELAND_PYTHON_ENV = "ES_BIOMED_ELAND_PYTHON"
#: Max abs difference (normalized embeddings, or similarity scores) under which the traced model is accepted.
PARITY_TOLERANCE = 1e-4
#: The Elasticsearch version eland writes the config for (9.x: ``embedding_size`` is recorded).
DEFAULT_ES_VERSION = (9, 2, 0)
#: (query, document) pairs the text_similarity export checks when no probes are given.
PROBE_PAIRS = (
    (
        "BRCA1 mutations and breast cancer risk",
        "Women carrying BRCA1 mutations have a high lifetime risk of breast cancer.",
    ),
    (
        "What is the association of spermidine with α-synuclein neurotoxicity?",
        "Spermidine reduces α-synuclein toxicity.",
    ),
    ("0-dimensional biomaterials show inductive properties.", ""),
    ("a", "Alterations of the architecture of cerebral white matter in the developing human brain " * 30),
)
#: Run as a script by the eland environment's python; it sits beside this module, whose name must never shadow a
#: package it imports (``eland``): a script's folder comes first on its ``sys.path``.
_HELPER = Path(__file__).with_name("eland_trace.py")
#: The repository (or site-packages) root, where ``make eland-env`` puts ``.venv-eland``.
_REPO = Path(__file__).resolve().parents[2]
_ES_MODEL_ID = re.compile(r"[^a-z0-9_.-]+")


class ElandExportError(RuntimeError, EsBiomedError):
    """The export was refused or failed: a model directory, a dims check, the eland environment or parity."""


@dataclass(frozen=True)
class ElandExport:
    """What :func:`export_eland` wrote.

    Attributes:
        out: Directory with ``traced_pytorch_model.pt``, ``config.json``, ``vocabulary.json`` and the manifest.
        task_type: ``"text_embedding"`` or ``"text_similarity"``.
        dims: Output dims of the traced model (``None`` for ``text_similarity``: one score).
        parity: Max abs difference measured against es-biomed's encoder (or the HF model's logits).
        normalized: Whether the traced model itself returns unit-norm vectors (``None`` for ``text_similarity``).
        torch_version: The torch the model was traced and reloaded with.
        eland_version: The eland that traced it.
        es_model_id: The model id the upload command uses.
        upload_command: ``eland_import_hub_model`` command line that uploads the model to a cluster.
    """

    out: Path
    task_type: str
    dims: int | None
    parity: float
    normalized: bool | None
    torch_version: str
    eland_version: str
    es_model_id: str
    upload_command: str

    @property
    def manifest(self) -> Path:
        return self.out / MANIFEST_FILENAME


def resolve_model_dir(model: str, task_type: TaskType | None = None) -> tuple[Path, str | None]:
    """The model directory of a registered model (name or alias), or ``model`` as a directory.

    A registered torch encoder exports as ``text_embedding``, a registered cross-encoder (``"kind":
    "cross-encoder"`` in ``models.json``) as ``text_similarity``.

    Returns:
        ``(directory, canonical registered name or None)``.

    Raises:
        ElandExportError: a registered non-torch variant (ONNX) is named, a registered model does not fit
            ``task_type``, or ``model`` is neither a name nor a directory.
    """
    spec = lookup(model)
    if spec is None:
        path = Path(model).expanduser()
        if not path.is_dir():
            raise ElandExportError(
                f"unknown model {model!r}: not a registered encoder ({', '.join(known('encoder'))}) "
                "and not a model directory"
            )
        return path, None
    name = spec["name"]
    if spec["kind"] == "reader":
        raise ElandExportError(
            f"{name!r} is a QA reader; eland exports encoders (text_embedding) and cross-encoders (text_similarity)"
        )
    if spec["kind"] == "cross-encoder":
        if task_type == "text_embedding":
            raise ElandExportError(f"{name!r} is a cross-encoder: export it with task type text_similarity")
        return _resolve(model, "cross-encoder"), name
    if task_type == "text_similarity":
        raise ElandExportError(
            f"{name!r} is an encoder (text_embedding); text_similarity needs a cross-encoder: a registered one or a "
            "*ForSequenceClassification directory with num_labels=1"
        )
    if spec.get("backend", "torch") != "torch":
        source = spec.get("source")
        hint = f"; export its torch source {source!r} instead" if source else ""
        raise ElandExportError(f"encoder {name!r} is a {spec['backend']} model, not torch weights{hint}")
    return _resolve(model, "encoder"), name


def _resolve(model: str, kind: Kind) -> Path:
    """The catalog's directory for ``model``, its failures as :class:`ElandExportError` (same message)."""
    try:
        return resolve(model, kind, error=ElandExportError)
    except (MissingDependencyError, ModelNotFetchedError) as exc:
        raise ElandExportError(str(exc)) from exc


def validate_model_dir(model_dir: Path, task_type: TaskType) -> dict[str, Any]:
    """Check that ``model_dir`` holds what eland needs for ``task_type``; returns its ``config.json``.

    Raises:
        ElandExportError: ``config.json``, the weights or the tokenizer files are missing (all named, with the
            directory), or a ``text_similarity`` model is not a ``*ForSequenceClassification`` with one label.
    """
    missing = missing_model_files(model_dir)
    if missing:
        raise ElandExportError(f"{model_dir}: missing {', '.join(missing)}")
    config = read_model_config(model_dir, ElandExportError)
    if task_type == "text_similarity":
        archs = config.get("architectures") or []
        if not any(str(a).endswith("ForSequenceClassification") for a in archs):
            raise ElandExportError(
                f"{model_dir}: text_similarity needs a *ForSequenceClassification model (a cross-encoder); "
                f"config.json has architectures {archs}"
            )
        labels = num_labels(config)
        if labels != 1:
            raise ElandExportError(
                f"{model_dir}: text_similarity needs a cross-encoder with num_labels=1 (one relevance score); "
                f"this model has {labels} labels"
            )
    return config


def model_output_dims(model_dir: Path, config: dict[str, Any] | None = None) -> int | None:
    """The embedding dims a sentence-transformers directory produces, read from its files (no torch): the last
    ``Dense`` module's ``out_features``, else the transformer's hidden size. ``None`` when it cannot be told."""
    config = config if config is not None else json.loads((model_dir / "config.json").read_text())
    dims = config.get("hidden_size") or config.get("dim") or config.get("d_model")
    modules = model_dir / "modules.json"
    if modules.is_file():
        try:
            for module in json.loads(modules.read_text()):
                if str(module.get("type", "")).endswith(".Dense"):
                    dense = json.loads((model_dir / module["path"] / "config.json").read_text())
                    dims = dense.get("out_features", dims)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
    return int(dims) if dims else None


def mapping_dims(path: str | os.PathLike[str]) -> int:
    """The vector dims a mapping file declares: every ``dense_vector`` field's ``dims`` (Elasticsearch) or
    ``knn_vector`` field's ``dimension`` (OpenSearch), found anywhere in the JSON (an index template, a mapping, or
    a ``GET _mapping`` response).

    Raises:
        ElandExportError: the file is unreadable, declares no vector dims, or declares different dims for
            different fields.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ElandExportError(f"{path}: unreadable mapping: {exc}") from exc
    found: dict[str, int] = {}

    def walk(node: Any, trail: str) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "dense_vector" and isinstance(node.get("dims"), int):
                found[trail] = node["dims"]
            elif kind == "knn_vector" and isinstance(node.get("dimension"), int):
                found[trail] = node["dimension"]
            for key, value in node.items():
                walk(value, f"{trail}.{key}" if trail else key)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{trail}[{i}]")

    walk(data, "")
    if not found:
        raise ElandExportError(f"{path}: no dense_vector field with dims (nor knn_vector with dimension)")
    values = sorted(set(found.values()))
    if len(values) > 1:
        fields = ", ".join(f"{k}={v}" for k, v in found.items())
        raise ElandExportError(f"{path}: vector fields disagree on dims ({fields})")
    return values[0]


def find_eland_python(eland_python: str | os.PathLike[str] | None = None) -> Path:
    """The eland environment's python: ``eland_python``, else ``$ES_BIOMED_ELAND_PYTHON``, else
    ``.venv-eland/bin/python`` in the repository or the current directory.

    Raises:
        ElandExportError: none of them exists; the message says how to build the environment.
    """
    chosen = eland_python or os.environ.get(ELAND_PYTHON_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ElandExportError(
                f"no eland environment: {path} does not exist (from "
                f"{'eland_python' if eland_python else '$' + ELAND_PYTHON_ENV}); build one with `make eland-env`"
            )
        return path
    candidates = [_REPO / ".venv-eland", Path.cwd() / ".venv-eland"]
    for venv in candidates:
        if (venv / "bin" / "python").is_file():
            return venv / "bin" / "python"
    raise ElandExportError(
        f"no eland environment at {' or '.join(str(c) for c in dict.fromkeys(candidates))}: run `make eland-env` "
        f"in the repository (eland with the torch it pins, from requirements/eland.txt), or set {ELAND_PYTHON_ENV} "
        "to the python of an environment with eland[pytorch]"
    )


def export_eland(
    model: str,
    out: str | os.PathLike[str],
    *,
    task_type: TaskType = "text_embedding",
    mapping: str | os.PathLike[str] | None = None,
    dims: int | None = None,
    eland_python: str | os.PathLike[str] | None = None,
    es_version: tuple[int, int, int] = DEFAULT_ES_VERSION,
    es_model_id: str | None = None,
    probes: Sequence[str] | Sequence[tuple[str, str]] | None = None,
    tolerance: float = PARITY_TOLERANCE,
) -> ElandExport:
    """Trace ``model`` with eland in the eland environment into ``out`` and verify it against es-biomed.

    Args:
        model: A registered torch encoder (``all-MiniLM-L6-v2``, ``biomed-minilm``...) or cross-encoder, or a model
            directory: sentence-transformers for ``text_embedding``, a Hugging Face ``*ForSequenceClassification``
            with ``num_labels=1`` for ``text_similarity``.
        out: Directory to create (it must not exist, or be empty); written only when every check passes.
        task_type: eland's task type.
        mapping: A mapping or index template file (e.g. ``mappings/templates/es-biomed.json``); its
            ``dense_vector`` dims must equal the model's output dims (``text_embedding`` only).
        dims: Dims the model must produce (e.g. those recorded in an index), checked like ``mapping``'s.
        eland_python: The eland environment's python (default: see :func:`find_eland_python`).
        es_version: The Elasticsearch version eland writes the config for.
        es_model_id: Model id for the upload command (default: the encoder's name, lowercased).
        probes: Texts (``text_embedding``) or (query, document) pairs (``text_similarity``) to check parity on;
            default :data:`~es_biomed.encode.onnx_build.PROBE_TEXTS` or :data:`PROBE_PAIRS`.
        tolerance: Max abs difference accepted.

    Returns:
        An :class:`ElandExport`; its ``manifest`` file has the same facts and the upload command.

    Raises:
        ElandExportError: the model directory lacks files, the dims disagree with ``mapping`` / ``dims`` (both
            numbers named, before anything is traced or uploaded), ``out`` is not empty, the eland environment is
            missing or fails, or parity exceeds ``tolerance`` (the measured figure named; nothing is left in ``out``).
        MissingDependencyError: this environment lacks torch / transformers for the reference side.
    """
    if task_type not in TASK_TYPES:
        raise ElandExportError(f"task type {task_type!r} is not supported; use one of {', '.join(TASK_TYPES)}")
    if mapping is not None and task_type != "text_embedding":
        raise ElandExportError("a mapping's dense_vector dims apply to text_embedding models only")
    model_dir, name = resolve_model_dir(model, task_type)
    config = validate_model_dir(model_dir, task_type)
    expected = _expected_dims(mapping, dims)
    if task_type == "text_embedding" and expected is not None:
        _check_dims(model_output_dims(model_dir, config), expected, model, mapping)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ElandExportError(f"{out} exists and is not empty; remove it or choose another output directory")
    python = find_eland_python(eland_python)
    if probes is None:
        from es_biomed.encode.onnx_build import PROBE_TEXTS

        probes = PROBE_TEXTS if task_type == "text_embedding" else PROBE_PAIRS
    probe_list: list[Any] = [list(p) for p in probes] if task_type == "text_similarity" else [str(p) for p in probes]
    if not probe_list:
        raise ElandExportError("no probe texts to check parity on")
    max_length = (read_pooling_config(model_dir)[1] or 512) if task_type == "text_embedding" else None

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="es-biomed-eland-") as scratch:
            job: dict[str, Any] = {
                "model_dir": str(model_dir),
                "out": str(staging),
                "task_type": task_type,
                "es_version": list(es_version),
                "max_model_input_size": max_length,
                "probes": probe_list,
                "probe_out": str(Path(scratch) / "probe.npy"),
            }
            report = _run_helper(python, job)
            import numpy as np

            traced = np.load(job["probe_out"])
        if task_type == "text_embedding":
            _check_dims(int(traced.shape[1]), expected, model, mapping)  # what the traced model really outputs
        ref, reference, identity = _reference(task_type, model_dir, name, probe_list, report["max_sequence_length"])
        normalized = None
        if task_type == "text_embedding":
            norms = np.linalg.norm(traced, axis=1)
            normalized = bool(np.all(np.abs(norms - 1) < 1e-5))
            traced = traced / np.clip(norms, 1e-12, None)[:, None]
            if traced.shape != ref.shape:
                raise ElandExportError(f"traced model gives {traced.shape} outputs, es-biomed {ref.shape}")
        parity = float(np.max(np.abs(traced - ref)))
        if not parity <= tolerance:
            raise ElandExportError(
                f"{model}: the traced model differs from {reference} by {parity:.3g} (max abs, "
                f"{len(probe_list)} probes), more than {tolerance:g}; nothing was written to {out}"
            )
        es_id = es_model_id or _default_es_model_id(name or model_dir.name)
        upload = _upload_command(python, model_dir, task_type, es_id, max_length)
        upload_files = _upload_files_command(python, out, es_id)
        manifest = {
            "task_type": task_type,
            "source": {"model": model, "name": name, "directory": str(model_dir), "fingerprint": identity},
            "files": report["files"],
            "torch_version": report["torch_version"],
            "eland_version": report["eland_version"],
            "transformers_version": report["transformers_version"],
            "sentence_transformers_version": report["sentence_transformers_version"],
            "es_version": ".".join(map(str, es_version)),
            "dims": report["dims"],
            "normalized": normalized,
            "max_sequence_length": report["max_sequence_length"],
            "mapping": str(mapping) if mapping is not None else None,
            "parity": {
                "max_abs_diff": parity,
                "tolerance": tolerance,
                "probes": len(probe_list),
                "against": reference,
                "compared": "L2-normalized embeddings" if task_type == "text_embedding" else "raw scores (logits)",
            },
            "es_model_id": es_id,
            "upload_command": upload,
            "upload_files_command": upload_files,
        }
        write_text_atomic(staging / MANIFEST_FILENAME, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result = ElandExport(
        out=out,
        task_type=task_type,
        dims=report["dims"],
        parity=parity,
        normalized=normalized,
        torch_version=report["torch_version"],
        eland_version=report["eland_version"],
        es_model_id=es_id,
        upload_command=upload,
    )
    log.info("eland export %s", json.dumps({k: str(v) for k, v in asdict(result).items()}))
    return result


def _expected_dims(mapping: str | os.PathLike[str] | None, dims: int | None) -> int | None:
    from_mapping = mapping_dims(mapping) if mapping is not None else None
    if from_mapping is not None and dims is not None and from_mapping != dims:
        raise ElandExportError(f"dims={dims} disagrees with {mapping}'s dense_vector dims {from_mapping}")
    return from_mapping if from_mapping is not None else dims


def _check_dims(actual: int | None, expected: int | None, model: str, mapping: Any) -> None:
    if actual is None or expected is None or actual == expected:
        return
    where = f"the mapping {mapping} has dense_vector dims {expected}" if mapping else f"dims {expected} are expected"
    raise ElandExportError(
        f"{model} produces {actual}-dimensional vectors but {where}; refusing to export a model the index cannot "
        "store (choose an encoder with that many dims, or a mapping made for this one)"
    )


def _run_helper(python: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Run ``eland_trace.py`` in the eland environment; its last stdout line is a JSON report."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    log.info("tracing %s with eland (%s)", job["model_dir"], python)
    try:
        proc = subprocess.run(
            [str(python), str(_HELPER)], input=json.dumps(job), capture_output=True, text=True, env=env, check=False
        )
    except OSError as exc:
        raise ElandExportError(f"could not run the eland environment's python {python}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ElandExportError(f"eland could not trace {job['model_dir']} (exit {proc.returncode}):\n{tail}")
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        raise ElandExportError(f"the eland helper gave no report; its output ended: {proc.stdout[-500:]!r}") from exc


def _reference(
    task_type: str, model_dir: Path, name: str | None, probes: list[Any], max_length: int
) -> tuple[Any, str, str | None]:
    """es-biomed's side of the parity check: ``(outputs, description, fingerprint)``."""
    if task_type == "text_embedding":
        from es_biomed.encode.loading import load_encoder

        enc = load_encoder(name or str(model_dir))
        return enc.encode(probes), f"es-biomed's {type(enc).__name__} {enc.name!r}", enc.fingerprint
    torch = require("torch", "torch")
    transformers = require("transformers", "torch")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(str(model_dir), local_files_only=True)
    hf.eval()
    scores = []
    for start in range(0, len(probes), 16):
        chunk = probes[start : start + 16]
        enc = tokenizer(
            [p[0] for p in chunk],
            [p[1] for p in chunk],
            padding=True,
            truncation="only_second",
            max_length=max_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            scores.append(hf(**enc).logits[:, 0].float())
    return torch.cat(scores).numpy(), f"transformers {type(hf).__name__} logits", None


def _default_es_model_id(name: str) -> str:
    """An Elasticsearch model id from a name: lowercase letters, digits, ``-``, ``_``, ``.``; at most 64 chars."""
    return _ES_MODEL_ID.sub("_", name.lower()).strip("_.-")[:64] or "es-biomed-model"


def _upload_command(python: Path, model_dir: Path, task_type: str, es_model_id: str, max_length: int | None) -> str:
    """eland's own upload, from the same environment and the same local directory (eland traces it again, with the
    same pinned torch and settings, before uploading). Add ``--es-api-key`` / ``-u``/``-p`` and ``--ca-certs`` as the
    cluster needs."""
    parts = [
        shlex.quote(str(Path(os.path.abspath(python)).parent / "eland_import_hub_model")),
        '--url "$ES_URL"',
        f"--hub-model-id {shlex.quote(str(Path(os.path.abspath(model_dir))))}",
        f"--task-type {task_type}",
        f"--es-model-id {es_model_id}",
    ]
    if max_length is not None:
        parts.append(f"--max-model-input-length {max_length}")
    parts.append("--start")
    return " ".join(parts)


def _upload_files_command(python: Path, out: Path, es_model_id: str) -> str:
    """Upload exactly the files written and verified here, through eland's ``PyTorchModel.import_model``."""
    code = (
        "import sys; from elasticsearch import Elasticsearch; from eland.ml.pytorch import PyTorchModel; "
        "m = PyTorchModel(Elasticsearch(sys.argv[1]), sys.argv[2]); d = sys.argv[3]; "
        'm.import_model(model_path=d + "/traced_pytorch_model.pt", config_path=d + "/config.json", '
        'vocab_path=d + "/vocabulary.json"); m.start()'
    )
    args = [os.path.abspath(python), "-c", code, "$ES_URL", es_model_id, os.path.abspath(out)]
    return " ".join('"$ES_URL"' if a == "$ES_URL" else shlex.quote(a) for a in args)
