"""Export a Hugging Face encoder directory to ONNX, fuse it for ONNX Runtime and quantize it (build time only).

Export needs torch and transformers (``pip install 'es-biomed[torch,onnx]'``); using the result needs neither (see
:class:`~es_biomed.encode.onnx_backend.OnnxEncoder`). An export directory holds:

* ``model.onnx``: fp32 graph with ORT's BERT fusions (attention, embedding + LayerNorm, skip LayerNorm, bias GELU);
  inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids`` if the tokenizer makes them), int64
  ``[batch, seq]`` with dynamic axes; output ``last_hidden_state`` float32 ``[batch, seq, hidden]``;
* ``model_int8.onnx``: the same graph with dynamic int8 quantization of its MatMuls (u8 activations, s8 weights,
  which uses AVX-512 VNNI where the CPU has it);
* ``tokenizer.json``: the fast tokenizer exactly as transformers loads it for the torch encoder;
* ``es_biomed_onnx.json``: pooling, max length, dims, input names, the source's fingerprint and, per variant, the
  file's hash, its fingerprint and the parity measured against torch at export.

Named encoders are exported on first use into a cache directory (:func:`ensure_exported`):
``$ES_BIOMED_ONNX_DIR`` if set, else ``$XDG_CACHE_HOME/es-biomed/onnx`` (default ``~/.cache/es-biomed/onnx``), one
subdirectory ``<name>-<source fingerprint>`` per model, so new weights get a new directory.

Example:
    >>> from es_biomed.encode.onnx_build import export_onnx
    >>> export_onnx("/models/all-MiniLM-L6-v2", "/models/minilm-onnx")  # doctest: +SKIP
    PosixPath('/models/minilm-onnx')
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from es_biomed.encode.base import Pooling, read_pooling_config
from es_biomed.encode.onnx_format import MANIFEST_FILENAME, VARIANT_FILES, variant_fingerprint
from es_biomed.errors import EsBiomedError, require
from es_biomed.models.cache import ensure_built, onnx_cache_dir
from es_biomed.models.files import fingerprint_files, read_json_object, write_text_atomic

__all__ = [
    "MANIFEST_FILENAME",
    "BF16_TOLERANCE",
    "PARITY_TOLERANCE",
    "PROBE_TEXTS",
    "VARIANT_FILES",
    "ensure_exported",
    "export_onnx",
    "record_bf16_parity",
    "export_torch_graph",
    "fuse_transformer_graph",
    "source_fingerprint",
]

log = logging.getLogger(__name__)

#: Settings written next to the ONNX files.
#: Max abs difference (unit-norm vectors) under which the fp32 ONNX model keeps the torch encoder's fingerprint.
PARITY_TOLERANCE = 1e-4
#: Max abs difference from the fp32 export under which the bf16 variant (OpenVINO) shares the fp32 fingerprint.
#: Measured about 1.7e-3 on :data:`PROBE_TEXTS`; index compatibility at that level is shown by the quality gate in
#: benchmarks/RESULTS.md (SciFact NDCG@10 and BioASQ MRR@10 within 0.003 of fp32, in both directions).
BF16_TOLERANCE = 5e-3
#: Texts the export checks parity on: empty, one letter, biomedical, non-ASCII and longer than 256 tokens.
PROBE_TEXTS = (
    "",
    "a",
    "BRCA1 mutations and breast cancer risk",
    "What is the association of spermidine with α-synuclein neurotoxicity?",
    "0-dimensional biomaterials show inductive properties.",
    "Alterations of the architecture of cerebral white matter in the developing human brain " * 30,
)
#: Hugging Face ``model_type`` values the ORT BERT fusions apply to.
_FUSABLE = ("bert",)
_OPSET = 17


def _model_settings(model_dir: Path, max_length: int | None, pooling: Pooling | None) -> dict[str, Any]:
    """Pooling, max length and dims exactly as :class:`~es_biomed.encode.torch_backend.TorchEncoder` resolves them."""
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        raise EsBiomedError(f"{model_dir} is not a Hugging Face model directory: no config.json")
    try:
        config: dict[str, Any] = json.loads(cfg_path.read_text())
    except ValueError as exc:
        raise EsBiomedError(f"{cfg_path}: not valid JSON: {exc}") from exc
    cfg_pool, cfg_len = read_pooling_config(model_dir)
    return {
        "pooling": pooling or cfg_pool,
        "max_length": int(max_length or cfg_len or 512),
        "dims": int(config["hidden_size"]),
        "model_type": config.get("model_type"),
        "num_heads": int(config.get("num_attention_heads", 0)),
    }


def _weight_files(model_dir: Path) -> list[Path]:
    return sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("pytorch_model*.bin"))


def source_fingerprint(model_dir: str | os.PathLike[str], max_length: int | None = None) -> str:
    """The fingerprint :class:`~es_biomed.encode.torch_backend.TorchEncoder` gives ``model_dir``, without torch."""
    model_dir = Path(model_dir)
    s = _model_settings(model_dir, max_length, None)
    weights = _weight_files(model_dir)
    if not weights:
        raise EsBiomedError(f"{model_dir}: no weights (*.safetensors or pytorch_model*.bin)")
    return fingerprint_files(weights, {"pooling": s["pooling"], "max_length": s["max_length"], "dims": s["dims"]})


def export_onnx(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    max_length: int | None = None,
    pooling: Pooling | None = None,
    int8: bool = True,
) -> Path:
    """Export, fuse and (optionally) quantize a Hugging Face encoder; check fp32 parity with the torch encoder.

    The fp32 variant keeps the torch encoder's fingerprint only if its unit-norm vectors on :data:`PROBE_TEXTS`
    are within :data:`PARITY_TOLERANCE` of torch's (so an index built with torch can be searched with ONNX
    Runtime); otherwise it gets a fingerprint of its own. The int8 variant always has its own fingerprint.

    Args:
        model_dir: Hugging Face (or sentence-transformers) model directory with ``config.json``, weights and a
            fast tokenizer.
        out_dir: Where to write; must not exist or be empty.
        max_length: Token limit; defaults to the sentence-transformers ``max_seq_length``, else 512.
        pooling: Defaults to the sentence-transformers pooling config, else ``"mean"``.
        int8: Also write the dynamically quantized ``model_int8.onnx``.

    Returns:
        ``out_dir``.

    Raises:
        EsBiomedError: ``model_dir`` is not a model directory, or ``out_dir`` is not empty.
        MissingDependencyError: torch, transformers, onnx or onnxruntime is missing.
    """
    src = Path(model_dir).expanduser()
    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EsBiomedError(f"{out} exists and is not an empty directory; choose a new output directory")
    settings = _model_settings(src, max_length, pooling)
    torch: Any = require("torch", "torch")
    transformers: Any = require("transformers", "torch")
    require("onnx", "onnx")
    ort: Any = require("onnxruntime", "onnx")

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(src), local_files_only=True)
    if not getattr(tokenizer, "is_fast", False):
        raise EsBiomedError(f"{src}: no fast tokenizer (tokenizer.json); the ONNX encoder needs one")
    model = transformers.AutoModel.from_pretrained(str(src), local_files_only=True).eval()
    sample = tokenizer(["a b c", "d"], padding=True, return_tensors="pt")
    input_names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]

    class _Hidden(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(input_names, args, strict=True))).last_hidden_state

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        raw = Path(tmp) / "raw.onnx"
        export_torch_graph(
            _Hidden(model), tuple(sample[k] for k in input_names), input_names, ["last_hidden_state"], raw
        )
        _optimize(raw, out / VARIANT_FILES["fp32"], settings)
    if int8:
        from onnx import TensorProto
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            out / VARIANT_FILES["fp32"],
            out / VARIANT_FILES["int8"],
            weight_type=QuantType.QInt8,
            per_channel=True,
            # fused contrib ops (Attention, SkipLayerNormalization) defeat ONNX shape inference: their outputs are float
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    for rel in ("config.json", "sentence_bert_config.json", "1_Pooling/config.json"):
        if (src / rel).is_file():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, out / rel)

    base = {k: settings[k] for k in ("pooling", "max_length", "dims")}
    manifest: dict[str, Any] = {
        "format": 1,
        **base,
        "inputs": input_names,
        "pad_token": tokenizer.pad_token,
        "output": "last_hidden_state",
        "source": str(src),
        "source_fingerprint": fingerprint_files(_weight_files(src), base),
        "opset": _OPSET,
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
        "variants": {},
    }
    for variant, filename in VARIANT_FILES.items():
        if (out / filename).is_file():
            manifest["variants"][variant] = {
                "file": filename,
                "sha": fingerprint_files([out / filename], {}),
                "fingerprint": variant_fingerprint(out / filename, out / "tokenizer.json", base, variant),
            }
    (out / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=2) + "\n")

    diff = _parity(src, out, settings)
    fp32 = manifest["variants"]["fp32"]
    fp32["parity_max_abs_diff"] = diff
    if diff <= PARITY_TOLERANCE:
        fp32["fingerprint"] = manifest["source_fingerprint"]
    else:
        log.warning(
            "%s: fp32 ONNX differs from torch by %.2e > %g; it gets its own fingerprint", src, diff, PARITY_TOLERANCE
        )
    (out / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=2) + "\n")
    record_bf16_parity(out)
    return out


def record_bf16_parity(export_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Measure the bf16 variant against the fp32 export on :data:`PROBE_TEXTS` and record it in the manifest.

    The bf16 variant is the fp32 ``model.onnx`` compiled by OpenVINO in bf16. Its record carries the fp32
    fingerprint (so indices built with torch, fp32 ONNX or bf16 are interchangeable) only if the fp32 export earned
    the torch fingerprint and bf16 is within :data:`BF16_TOLERANCE` of it; else a fingerprint of its own. Returns
    the record, or ``None`` (nothing written) when openvino or onnxruntime is not installed.
    """
    import importlib.util

    out = Path(export_dir)
    if importlib.util.find_spec("openvino") is None or importlib.util.find_spec("onnxruntime") is None:
        return None
    import numpy as np

    from es_biomed.encode.onnx_backend import OnnxEncoder

    manifest = read_json_object(out / MANIFEST_FILENAME, "export settings", EsBiomedError)
    fp32 = manifest.get("variants", {}).get("fp32")
    if not fp32:
        raise EsBiomedError(f"{out}: the manifest records no fp32 variant; re-export the model")
    bf16 = OnnxEncoder(out, variant="bf16")
    diff = float(np.abs(OnnxEncoder(out, variant="fp32").encode(PROBE_TEXTS) - bf16.encode(PROBE_TEXTS)).max())
    base = {k: manifest[k] for k in ("pooling", "max_length", "dims")}
    compatible = fp32.get("fingerprint") == manifest.get("source_fingerprint") and diff <= BF16_TOLERANCE
    record = {
        "file": fp32["file"],
        "runtime": "openvino",
        "precision": bf16.precision,
        "sha": fp32["sha"],
        "parity_vs_fp32_max_abs_diff": diff,
        "fingerprint": fp32["fingerprint"]
        if compatible
        else variant_fingerprint(out / fp32["file"], out / "tokenizer.json", base, "bf16"),
    }
    if not compatible:
        log.warning("%s: bf16 differs from fp32 by %.2e > %g; it gets its own fingerprint", out, diff, BF16_TOLERANCE)
    manifest.setdefault("variants", {})["bf16"] = record
    manifest.setdefault("versions", {})["openvino"] = importlib.import_module("openvino").__version__
    write_text_atomic(out / MANIFEST_FILENAME, json.dumps(manifest, indent=2) + "\n")  # readers: old or new, whole
    return record


def export_torch_graph(
    module: Any, sample: tuple[Any, ...], input_names: list[str], output_names: list[str], dest: Path
) -> Path:
    """Trace a torch module over ``sample`` (``int64 [batch, sequence]`` token inputs) into an ONNX file whose
    inputs and outputs all have dynamic ``batch`` and ``sequence`` axes (the graph ORT's BERT fusions match).

    Shared by the encoder export and the QA reader's (:mod:`es_biomed.qa.onnx`, outputs ``start_logits`` and
    ``end_logits``).
    """
    torch: Any = require("torch", "torch")
    axes = {k: {0: "batch", 1: "sequence"} for k in (*input_names, *output_names)}
    with torch.inference_mode(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated in torch >= 2.9 but its graphs are the ones ORT's BERT fusions
        # match; the tracer's constant warnings are about the attention-mask arithmetic, which is shape-generic.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            module,
            sample,
            str(dest),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=axes,
            opset_version=_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return dest


def fuse_transformer_graph(raw: Path, dest: Path, model_type: str | None, num_heads: int, hidden_size: int) -> None:
    """ORT's transformer fusions for a BERT-family graph written by :func:`export_torch_graph` (other model types
    are copied as exported)."""
    _optimize(raw, dest, {"model_type": model_type, "num_heads": num_heads, "dims": hidden_size})


def _optimize(raw: Path, dest: Path, settings: dict[str, Any]) -> None:
    """ORT transformer fusions for BERT-family graphs; other model types are copied as exported."""
    if settings["model_type"] not in _FUSABLE:
        log.info(
            "model_type %r: no ORT transformer fusions, ORT's runtime graph optimizations only", settings["model_type"]
        )
        shutil.copyfile(raw, dest)
        return
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    model = optimizer.optimize_model(
        str(raw),
        model_type="bert",
        num_heads=settings["num_heads"],
        hidden_size=settings["dims"],
        optimization_options=options,
        opt_level=0,
    )
    log.info("ORT fusions: %s", model.get_fused_operator_statistics())
    model.save_model_to_file(str(dest))


def _parity(src: Path, out: Path, settings: dict[str, Any]) -> float:
    """Max abs difference between the torch and the fp32 ONNX encoder on :data:`PROBE_TEXTS`."""
    import numpy as np

    from es_biomed.encode.onnx_backend import OnnxEncoder
    from es_biomed.encode.torch_backend import TorchEncoder

    ref = TorchEncoder(src, max_length=settings["max_length"], pooling=settings["pooling"]).encode(PROBE_TEXTS)
    got = OnnxEncoder(out, variant="fp32").encode(PROBE_TEXTS)
    return float(np.abs(ref - got).max())


def ensure_exported(name: str, model_dir: str | os.PathLike[str], max_length: int | None = None) -> Path:
    """The cached export of a registered model, made on first use (needs torch then, and only then).

    The cache key is the source's fingerprint, so changed weights or settings get a new directory. Two processes
    exporting at once each write a private temporary directory and rename it into place; the loser's is dropped.

    Raises:
        MissingDependencyError: no export exists yet and torch/transformers are not installed.
    """
    src = Path(model_dir)
    target = onnx_cache_dir() / f"{name}-{source_fingerprint(src, max_length)}"
    target, built = ensure_built(
        target, MANIFEST_FILENAME, lambda tmp: export_onnx(src, tmp, max_length=max_length), f"encoder {name!r}"
    )
    if not built and "bf16" not in read_json_object(target / MANIFEST_FILENAME, "export settings", EsBiomedError).get(
        "variants", {}
    ):
        record_bf16_parity(target)  # an export made before the bf16 variant, or without openvino then
    return target
