"""ONNX Runtime backend: an exported encoder (see :mod:`es_biomed.encode.onnx_build`) without torch or TensorFlow.

Tokenization uses Hugging Face ``tokenizers`` on the export's ``tokenizer.json`` (the same fast tokenizer the torch
encoder uses), truncated to ``max_length`` and padded to the longest text of each length-sorted batch. Pooling
follows the sentence-transformers config recorded at export (mean for MiniLM); the base class L2-normalizes.

Three variants of one export, each a runtime and a precision:

* ``fp32``: ``model.onnx`` on ONNX Runtime; matches torch within 1e-4 and then shares its fingerprint;
* ``int8``: ``model_int8.onnx`` (dynamic int8 MatMuls, VNNI) on ONNX Runtime; a fingerprint of its own;
* ``bf16``: ``model.onnx`` compiled by OpenVINO with bf16 inference precision (AMX / AVX512-BF16 GEMMs, fp32
  accumulation); a fingerprint of its own. On a CPU without bf16 instructions, or with ``ES_BIOMED_BF16=off``
  (:mod:`es_biomed.encode.cpu`), OpenVINO runs it in fp32 (vectors then differ from the bf16 ones by about 1e-3);
  :attr:`OnnxEncoder.precision` says which ran.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from es_biomed.encode.base import Encoder, Pooling, read_pooling_config
from es_biomed.encode.onnx_format import MANIFEST_FILENAME, VARIANT_FILES, variant_fingerprint
from es_biomed.errors import EsBiomedError, require
from es_biomed.models.files import fingerprint_files, read_json_object

__all__ = ["VARIANTS", "OnnxEncoder", "OnnxModelError", "Runtime", "physical_cores"]

log = logging.getLogger(__name__)

Variant = Literal["fp32", "int8", "bf16"]
Runtime = Literal["onnxruntime", "openvino"]


@dataclass(frozen=True)
class _VariantSpec:
    file_variant: str  # key of VARIANT_FILES: which exported file
    runtime: Runtime
    precision: str  # what the runtime computes in
    extra: str  # setup.cfg extra with the runtime


#: Variant name -> exported file, runtime and precision.
VARIANTS: dict[str, _VariantSpec] = {
    "fp32": _VariantSpec("fp32", "onnxruntime", "fp32", "onnx"),
    "int8": _VariantSpec("int8", "onnxruntime", "int8", "onnx"),
    "bf16": _VariantSpec("fp32", "openvino", "bf16", "openvino"),
}
_POOLINGS = ("mean", "cls", "max")
_TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "i64": np.int64, "i32": np.int32}
_FLOAT_TYPES = ("tensor(float)", "f32")


class OnnxModelError(ValueError, EsBiomedError):
    """An ONNX encoder file is missing, unreadable, or its inputs/outputs do not fit the tokenizer."""


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once); at least 1."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            cores.add(("?", str(cpu)))
    return max(1, len(cores))


class OnnxEncoder(Encoder):
    """Transformer encoder on ONNX Runtime (CPU).

    Args:
        path: An export directory (``model.onnx``, ``tokenizer.json``, optionally ``es_biomed_onnx.json``) or an
            ``.onnx`` file inside one.
        name: Name recorded in indices; defaults to the path.
        variant: ``"fp32"`` (``model.onnx``), ``"int8"`` (``model_int8.onnx``) or ``"bf16"`` (``model.onnx`` on
            OpenVINO); when ``path`` is a file, ``fp32`` / ``bf16`` mean the file as given and ``int8`` is read
            from the file name.
        max_length: Token limit; defaults to the export's, else the sentence-transformers config, else 512.
        pooling: Override the pooling mode.
        threads: Compute threads (ONNX Runtime intra-op, OpenVINO inference threads); defaults to
            ``$ES_BIOMED_THREADS`` if set (the Celery workers set it to their per-process thread count), else the
            number of physical cores.
        max_batch_tokens: Each ``encode`` batch runs in slices of at most this many (padded) tokens. Default per
            variant: 1024 on ONNX Runtime, where long texts in small slices keep the activations in cache (int8
            abstracts about 1.3x faster in slices of 4 x 256 tokens than in one run of 32 x 256, on 2 cores);
            8192 on OpenVINO bf16, whose AMX GEMMs want large tiles (about 2x faster than 1024). Results do not
            depend on it.

    Raises:
        OnnxModelError: a file is missing or corrupt, or the model's inputs and outputs don't match the tokenizer.
        MissingDependencyError: onnxruntime (openvino for ``bf16``) or tokenizers is not installed.

    Example:
        >>> enc = OnnxEncoder("~/.cache/es-biomed/onnx/all-MiniLM-L6-v2-0123456789abcdef")  # doctest: +SKIP
        >>> enc.encode(["aspirin and stroke"]).shape  # doctest: +SKIP
        (1, 384)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        variant: Variant = "fp32",
        max_length: int | None = None,
        pooling: Pooling | None = None,
        threads: int | None = None,
        max_batch_tokens: int | None = None,
        device: str | None = None,
    ) -> None:
        if device not in (None, "cpu"):
            raise EsBiomedError(f"the ONNX encoder runs on the CPU only; got device={device!r}")
        path = Path(path).expanduser()
        if variant not in VARIANTS:
            raise OnnxModelError(f"variant must be one of {tuple(VARIANTS)}, got {variant!r}")
        if path.suffix == ".onnx":
            self.model_dir, self.onnx_file = path.parent, path
            if path.name == VARIANT_FILES["int8"]:
                variant = "int8"
        else:
            self.model_dir, self.onnx_file = path, path / VARIANT_FILES[VARIANTS[variant].file_variant]
        self.variant: Variant = variant
        self.runtime: Runtime = VARIANTS[variant].runtime
        self.name = name or str(path)
        self.manifest = self._read_manifest()
        cfg_pool, cfg_len = read_pooling_config(self.model_dir)
        self.pooling = pooling or self.manifest.get("pooling") or cfg_pool
        if self.pooling not in _POOLINGS:
            raise OnnxModelError(f"{self.model_dir}: pooling must be one of {_POOLINGS}, got {self.pooling!r}")
        self.max_length = int(max_length or self.manifest.get("max_length") or cfg_len or 512)
        self._settings_overridden = (pooling not in (None, self.manifest.get("pooling"))) or (
            max_length not in (None, self.manifest.get("max_length"))
        )
        self.tokenizer_file = self.model_dir / "tokenizer.json"
        self.tokenizer = self._make_tokenizer()
        self.threads = int(threads or os.environ.get("ES_BIOMED_THREADS") or physical_cores())
        self.max_batch_tokens = int(max_batch_tokens or (8192 if self.runtime == "openvino" else 1024))
        if not self.onnx_file.is_file():
            raise OnnxModelError(
                f"{self.onnx_file}: no such ONNX file; export one with es_biomed.encode.onnx_build.export_onnx "
                "or load the encoder by its registered name"
            )
        self.session = _OrtSession(self) if self.runtime == "onnxruntime" else _OpenVinoSession(self)
        #: Precision the runtime computes in: ``fp32``, ``int8`` or ``bf16`` (``fp32`` where the CPU lacks bf16).
        self.precision: str = self.session.precision
        self._feeds, self._output = self._check_signature()
        try:  # one tiny batch: checks the contract end to end and reads the width
            probe = self._embed_batch([""])
        except Exception as exc:  # onnxruntime's errors have no common public base class
            raise OnnxModelError(
                f"{self.onnx_file}: running the model on the tokenizer's inputs ({', '.join(self._feeds)}) failed: {exc}"
            ) from exc
        if probe.ndim != 2 or probe.shape[0] != 1:
            raise OnnxModelError(f"{self.onnx_file}: output {self._output!r} is not [batch, sequence, hidden]")
        self.dims = int(probe.shape[1])
        if self.manifest.get("dims") not in (None, self.dims):
            raise OnnxModelError(
                f"{self.onnx_file}: output width {self.dims} differs from the {self.manifest['dims']} "
                f"recorded in {self.model_dir / MANIFEST_FILENAME}; re-export the model"
            )
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """The manifest's fingerprint if the file is the one exported, else one of the file's own bytes.

        An fp32 export that matched torch within 1e-4 carries the torch encoder's fingerprint (indices built with
        either backend are interchangeable); the int8 variant and unverified files have fingerprints of their own.
        """
        if self._fingerprint is None:
            recorded = self.manifest.get("variants", {}).get(self.variant, {})
            base = {"pooling": self.pooling, "max_length": self.max_length, "dims": self.dims}
            if (
                recorded.get("fingerprint")
                and not self._settings_overridden
                and recorded.get("sha") == fingerprint_files([self.onnx_file], {})
            ):
                self._fingerprint = str(recorded["fingerprint"])
            else:
                if recorded:
                    log.warning(
                        "%s differs from the exported file or settings; it gets its own fingerprint", self.onnx_file
                    )
                self._fingerprint = variant_fingerprint(self.onnx_file, self.tokenizer_file, base, self.variant)
        return self._fingerprint

    def tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The model's token inputs as ``[batch, longest]`` integer arrays."""
        encodings = self.tokenizer.encode_batch(texts)
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        return {k: np.asarray(columns[k], dtype=dtype) for k, dtype in self._feeds.items()}

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        feats = self.tokenize(texts)
        lengths = feats["attention_mask"].sum(axis=1)
        step = max(1, self.max_batch_tokens // max(1, int(lengths.max())))
        if step >= len(texts):
            return self._run(feats)
        # The base class sorts by length, so the rows of a slice are alike; each slice is cut to its longest row
        # (padding is on the right).
        parts = []
        for start in range(0, len(texts), step):
            rows = slice(start, start + step)
            width = int(lengths[rows].max())
            parts.append(self._run({k: v[rows, :width] for k, v in feats.items()}))
        return np.concatenate(parts)

    def _run(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        """One ONNX Runtime call and the pooling: ``[b, L]`` token inputs to ``[b, dims]`` float32."""
        tokens = self.session.run(self._output, feats)
        if self.pooling == "cls":
            return np.ascontiguousarray(tokens[:, 0], dtype=np.float32)
        mask = feats["attention_mask"].astype(np.float32)[:, :, None]
        if self.pooling == "max":
            return np.where(mask > 0, tokens, np.float32(-1e9)).max(axis=1).astype(np.float32)
        summed = np.einsum("bld,bl->bd", tokens, mask[:, :, 0])
        return (summed / np.clip(mask.sum(axis=1), 1e-9, None)).astype(np.float32)

    # -- loading helpers ---------------------------------------------------------------------------------

    def _read_manifest(self) -> dict[str, Any]:
        return read_json_object(self.model_dir / MANIFEST_FILENAME, "export settings", OnnxModelError)

    def _make_tokenizer(self) -> Any:
        tokenizers: Any = require("tokenizers", "onnx")
        if not self.tokenizer_file.is_file():
            raise OnnxModelError(
                f"{self.tokenizer_file}: missing; the ONNX encoder needs the model's fast tokenizer (tokenizer.json) "
                "next to the .onnx file"
            )
        try:
            tok = tokenizers.Tokenizer.from_file(str(self.tokenizer_file))
        except Exception as exc:  # tokenizers raises a bare Exception for malformed files
            raise OnnxModelError(f"{self.tokenizer_file}: not a usable tokenizer.json: {exc}") from exc
        tok.enable_truncation(max_length=self.max_length)
        # The model's own padding token (recorded at export, else in tokenizer.json), else a conventional one: MPNet's
        # vocabulary has both [PAD] (id 4, BERT's) and its real <pad> (id 1, the id its position ids skip).
        pad_token = self.manifest.get("pad_token") or (tok.padding or {}).get("pad_token")
        if pad_token is None or tok.token_to_id(pad_token) is None:
            pad_token = next((t for t in ("[PAD]", "<pad>") if tok.token_to_id(t) is not None), None)
        if pad_token is None:
            raise OnnxModelError(f"{self.tokenizer_file}: no padding token ([PAD] or <pad>) in the vocabulary")
        tok.enable_padding(pad_id=tok.token_to_id(pad_token), pad_token=pad_token)
        return tok

    def _check_signature(self) -> tuple[dict[str, type], str]:
        """The model's inputs must be tokenizer columns (int, rank 2) and one output rank-3 float."""
        expected = (
            "inputs input_ids and attention_mask (optionally token_type_ids), int64 or int32 [batch, sequence]; "
            "output last_hidden_state float32 [batch, sequence, hidden]"
        )
        feeds: dict[str, type] = {}
        for inp in self.session.inputs():
            if inp.name not in _TOKEN_INPUTS or inp.type not in _INT_TYPES or len(inp.shape) != 2:
                raise OnnxModelError(
                    f"{self.onnx_file}: input {inp.name!r} ({inp.type}, shape {inp.shape}) does not match the "
                    f"tokenizer; expected {expected}"
                )
            feeds[inp.name] = _INT_TYPES[inp.type]
        missing = [k for k in ("input_ids", "attention_mask") if k not in feeds]
        if missing:
            raise OnnxModelError(f"{self.onnx_file}: missing input(s) {', '.join(missing)}; expected {expected}")
        outputs = {o.name: o for o in self.session.outputs()}
        out = outputs.get(self.manifest.get("output", "last_hidden_state"))
        if out is None:
            rank3 = [o for o in outputs.values() if len(o.shape) == 3]
            out = rank3[0] if len(rank3) == 1 else None
        if out is None or len(out.shape) != 3 or out.type not in _FLOAT_TYPES:
            found = ", ".join(f"{o.name} ({o.type}, shape {o.shape})" for o in outputs.values())
            raise OnnxModelError(f"{self.onnx_file}: outputs {found} do not match; expected {expected}")
        return feeds, out.name


@dataclass(frozen=True)
class _Port:
    """A model input or output as both runtimes describe it: name, element type, shape (None = dynamic)."""

    name: str
    type: str
    shape: list[Any]


class _OrtSession:
    """``model.onnx`` / ``model_int8.onnx`` on ONNX Runtime's CPU provider (``run`` is thread-safe)."""

    def __init__(self, enc: OnnxEncoder) -> None:
        ort: Any = require("onnxruntime", VARIANTS[enc.variant].extra)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = enc.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(enc.onnx_file), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph types
            raise OnnxModelError(f"{enc.onnx_file}: not a loadable ONNX model: {exc}") from exc
        self.precision = VARIANTS[enc.variant].precision

    def inputs(self) -> list[_Port]:
        return [_Port(i.name, i.type, list(i.shape)) for i in self._session.get_inputs()]

    def outputs(self) -> list[_Port]:
        return [_Port(o.name, o.type, list(o.shape)) for o in self._session.get_outputs()]

    def run(self, output: str, feats: dict[str, np.ndarray]) -> np.ndarray:
        (tokens,) = self._session.run([output], feats)
        return tokens


class _OpenVinoSession:
    """``model.onnx`` compiled by OpenVINO for the CPU, in bf16 where the CPU has it.

    One compiled model; one infer request per calling thread (a request is not thread-safe, the model is).
    """

    def __init__(self, enc: OnnxEncoder) -> None:
        ov: Any = require("openvino", VARIANTS[enc.variant].extra)
        from es_biomed.encode.cpu import bf16_enabled

        wanted = VARIANTS[enc.variant].precision
        config = {
            # ES_BIOMED_BF16=off: the fp32 path of a CPU without bf16 instructions, on any CPU
            "INFERENCE_PRECISION_HINT": wanted if wanted != "bf16" or bf16_enabled() else "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": enc.threads,
        }
        try:
            self._model = ov.Core().compile_model(str(enc.onnx_file), "CPU", config)
        except Exception as exc:  # openvino raises RuntimeError subclasses with the frontend's report
            raise OnnxModelError(f"{enc.onnx_file}: OpenVINO cannot compile this ONNX model: {exc}") from exc
        hint = self._model.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type: what the plugin will really use
        self.precision = {"bf16": "bf16", "f16": "fp16"}.get(hint.get_type_name(), "fp32")
        self._local = threading.local()

    @staticmethod
    def _port(p: Any) -> _Port:
        shape = [None if d.is_dynamic else d.get_length() for d in p.get_partial_shape()]
        return _Port(p.get_any_name(), p.get_element_type().get_type_name(), shape)

    def inputs(self) -> list[_Port]:
        return [self._port(p) for p in self._model.inputs]

    def outputs(self) -> list[_Port]:
        return [self._port(p) for p in self._model.outputs]

    def run(self, output: str, feats: dict[str, np.ndarray]) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._model.create_infer_request()
        result = request.infer(feats)
        return np.array(result[self._model.output(output)], dtype=np.float32)
