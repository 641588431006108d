"""ONNX export of a QA reader (``BertForQuestionAnswering`` directory), made once into the ONNX cache.

The cache is the encoders' (:func:`~es_biomed.models.cache.onnx_cache_dir`, ``$ES_BIOMED_ONNX_DIR``), one
directory ``<name>-<fingerprint>`` per model, the fingerprint covering the weights and ``qa_config.json``, so new
weights get a new directory. An export holds:

* ``model.onnx``: fp32 graph with ORT's BERT fusions; inputs ``input_ids``, ``attention_mask``, ``token_type_ids``
  (int64 ``[batch, sequence]``), outputs ``start_logits`` and ``end_logits`` (float32 ``[batch, sequence]``);
* ``tokenizer.json`` and ``qa_config.json``, copied from the model;
* ``es_biomed_qa_onnx.json``: the source fingerprint, versions and the largest logit difference from torch
  measured at export (the export is refused above :data:`QA_PARITY_TOLERANCE`).

Exporting needs torch and transformers (``pip install 'es-biomed[torch,onnx,onnx-export]'``); using the export needs
only onnxruntime and tokenizers.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.encode.onnx_build import export_torch_graph, fuse_transformer_graph
from es_biomed.errors import EsBiomedError, require
from es_biomed.models.cache import ensure_built, onnx_cache_dir
from es_biomed.models.files import fingerprint_files
from es_biomed.qa.config import QA_CONFIG_FILENAME
from es_biomed.qa.errors import ModelFilesError

__all__ = ["MANIFEST_FILENAME", "ONNX_FILENAME", "QA_PARITY_TOLERANCE", "ensure_qa_exported", "export_qa_onnx"]

log = logging.getLogger(__name__)

MANIFEST_FILENAME = "es_biomed_qa_onnx.json"
ONNX_FILENAME = "model.onnx"
#: Largest start/end logit difference between torch and the fp32 ONNX graph that an export may have.
QA_PARITY_TOLERANCE = 1e-3
_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
_OUTPUTS = ["start_logits", "end_logits"]
_PROBE = (
    ("Which drug reverses benzodiazepine sedation?", "Flumazenil reverses benzodiazepine sedation in adults."),
    ("What is mutated in cystic fibrosis?", "Cystic fibrosis is caused by mutations in the CFTR gene. " * 12),
)


def qa_fingerprint(model_dir: str | os.PathLike[str]) -> str:
    """Fingerprint of a QA model directory: its weights, tokenizer and windowing settings."""
    d = Path(model_dir)
    files = sorted(d.glob("*.safetensors")) or sorted(d.glob("pytorch_model*.bin"))
    if not files:
        raise ModelFilesError(f"{d}: no weights (model.safetensors); reinstall es-biomed or re-export the model")
    extra = [d / n for n in ("tokenizer.json", QA_CONFIG_FILENAME) if (d / n).is_file()]
    return fingerprint_files([*files, *extra], {"task": "qa"})


def export_qa_onnx(model_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Export a ``BertForQuestionAnswering`` directory to a fused fp32 ONNX graph and check it against torch.

    Raises:
        EsBiomedError: ``out_dir`` is not empty, or the ONNX logits differ from torch's by more than
            :data:`QA_PARITY_TOLERANCE`.
        MissingDependencyError: torch, transformers or onnxruntime is missing.
    """
    src, out = Path(model_dir), Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EsBiomedError(f"{out} exists and is not an empty directory; choose a new output directory")
    torch: Any = require("torch", "torch")
    transformers: Any = require("transformers", "torch")
    ort: Any = require("onnxruntime", "onnx")
    model = transformers.BertForQuestionAnswering.from_pretrained(
        str(src), local_files_only=True, dtype=torch.float32
    ).eval()
    tok = transformers.BertTokenizerFast.from_pretrained(str(src), local_files_only=True)

    class _Logits(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            got = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return got.start_logits, got.end_logits

    sample = tok([q for q, _ in _PROBE], [c for _, c in _PROBE], padding=True, return_tensors="pt")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        raw = Path(tmp) / "raw.onnx"
        export_torch_graph(_Logits(model).eval(), tuple(sample[k] for k in _INPUTS), _INPUTS, _OUTPUTS, raw)
        cfg = model.config
        fuse_transformer_graph(
            raw, out / ONNX_FILENAME, cfg.model_type, int(cfg.num_attention_heads), int(cfg.hidden_size)
        )
    for name in ("tokenizer.json", QA_CONFIG_FILENAME, "config.json"):
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    session = ort.InferenceSession(str(out / ONNX_FILENAME), providers=["CPUExecutionProvider"])
    feeds = {k: sample[k].numpy().astype(np.int64) for k in _INPUTS}
    onnx_start, onnx_end = session.run(_OUTPUTS, feeds)
    with torch.inference_mode():  # the exporter restores the wrapper's mode: keep it eval, as exported
        ref = model.eval()(**{k: sample[k] for k in _INPUTS})
    mask = feeds["attention_mask"].astype(bool)
    diff = float(
        max(
            np.abs(onnx_start - ref.start_logits.numpy())[mask].max(),
            np.abs(onnx_end - ref.end_logits.numpy())[mask].max(),
        )
    )
    if diff > QA_PARITY_TOLERANCE:
        raise EsBiomedError(
            f"{src}: ONNX start/end logits differ from torch by {diff:.2e} > {QA_PARITY_TOLERANCE}; not exported"
        )
    manifest = {
        "format": 1,
        "task": "qa",
        "inputs": _INPUTS,
        "outputs": _OUTPUTS,
        "source": str(src),
        "source_fingerprint": qa_fingerprint(src),
        "sha": fingerprint_files([out / ONNX_FILENAME], {}),
        "parity_max_abs_logit_diff": diff,
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
    }
    (out / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def ensure_qa_exported(name: str, model_dir: str | os.PathLike[str]) -> Path:
    """The cached ONNX export of a QA model, made on first use (needs torch then, and only then).

    Two processes exporting at once each write a private temporary directory and rename it into place; the
    loser's is dropped.

    Raises:
        MissingDependencyError: no export exists yet and torch/transformers are not installed.
    """
    src = Path(model_dir)
    slug = Path(name).name if os.sep in name else name
    target = onnx_cache_dir() / f"{slug}-{qa_fingerprint(src)}"
    target, built = ensure_built(
        target,
        MANIFEST_FILENAME,
        lambda tmp: export_qa_onnx(src, tmp),
        f"QA model {name!r}",
        needs=("torch", "transformers"),
    )
    if built:
        log.info("exported QA model %s to ONNX in %s (once)", name, target)
    return target
