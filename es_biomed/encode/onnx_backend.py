"""ONNX Runtime backend: an exported encoder (see :mod:`es_biomed.encode.onnx_export`) without torch or TensorFlow.

Tokenization uses Hugging Face ``tokenizers`` on the export's ``tokenizer.json`` (the same fast tokenizer the torch
encoder uses), truncated to ``max_length`` and padded to the longest text of each length-sorted batch. Pooling
follows the sentence-transformers config recorded at export (mean for MiniLM); the base class L2-normalizes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from es_biomed.encode.base import Encoder, Pooling, fingerprint_files, read_json_object, read_pooling_config
from es_biomed.encode.onnx_export import MANIFEST_FILENAME, VARIANT_FILES, _own_fingerprint
from es_biomed.errors import EsBiomedError, require

__all__ = ["OnnxEncoder", "OnnxModelError", "physical_cores"]

log = logging.getLogger(__name__)

Variant = Literal["fp32", "int8"]
_POOLINGS = ("mean", "cls", "max")
_TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


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
        variant: ``"fp32"`` (``model.onnx``) or ``"int8"`` (``model_int8.onnx``); ignored when ``path`` is a file.
        max_length: Token limit; defaults to the export's, else the sentence-transformers config, else 512.
        pooling: Override the pooling mode.
        threads: ONNX Runtime intra-op threads; defaults to the number of physical cores.
        max_batch_tokens: Each ``encode`` batch runs in slices of at most this many (padded) tokens: long texts
            in small slices keep the activations in cache (measured on 2 cores: int8 abstracts about 1.3x faster
            in slices of 4 x 256 tokens than in one run of 32 x 256). Results do not depend on it.

    Raises:
        OnnxModelError: a file is missing or corrupt, or the model's inputs and outputs don't match the tokenizer.
        MissingDependencyError: onnxruntime or tokenizers is not installed.

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
        max_batch_tokens: int = 1024,
        device: str | None = None,
    ) -> None:
        if device not in (None, "cpu"):
            raise EsBiomedError(f"the ONNX encoder runs on the CPU only; got device={device!r}")
        path = Path(path).expanduser()
        if path.suffix == ".onnx":
            self.model_dir, self.onnx_file = path.parent, path
            variant = next((v for v, f in VARIANT_FILES.items() if f == path.name), "fp32")  # type: ignore[assignment]
        else:
            if variant not in VARIANT_FILES:
                raise OnnxModelError(f"variant must be one of {tuple(VARIANT_FILES)}, got {variant!r}")
            self.model_dir, self.onnx_file = path, path / VARIANT_FILES[variant]
        self.variant: Variant = variant
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
        self._ort: Any = require("onnxruntime", "onnx")
        self.threads = int(threads or physical_cores())
        self.max_batch_tokens = int(max_batch_tokens)
        self.session = self._make_session()
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
                self._fingerprint = _own_fingerprint(self.onnx_file, self.tokenizer_file, base, self.variant)
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
        (tokens,) = self.session.run([self._output], feats)
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
        pad_token = next((t for t in ("[PAD]", "<pad>") if tok.token_to_id(t) is not None), None)
        if pad_token is None:
            raise OnnxModelError(f"{self.tokenizer_file}: no padding token ([PAD] or <pad>) in the vocabulary")
        tok.enable_padding(pad_id=tok.token_to_id(pad_token), pad_token=pad_token)
        return tok

    def _make_session(self) -> Any:
        ort = self._ort
        if not self.onnx_file.is_file():
            raise OnnxModelError(
                f"{self.onnx_file}: no such ONNX file; export one with es_biomed.encode.onnx_export.export_onnx "
                "or load the encoder by its registered name"
            )
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            return ort.InferenceSession(str(self.onnx_file), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph types
            raise OnnxModelError(f"{self.onnx_file}: not a loadable ONNX model: {exc}") from exc

    def _check_signature(self) -> tuple[dict[str, type], str]:
        """The model's inputs must be tokenizer columns (int, rank 2) and one output rank-3 float."""
        expected = (
            "inputs input_ids and attention_mask (optionally token_type_ids), int64 or int32 [batch, sequence]; "
            "output last_hidden_state float32 [batch, sequence, hidden]"
        )
        feeds: dict[str, type] = {}
        for inp in self.session.get_inputs():
            if inp.name not in _TOKEN_INPUTS or inp.type not in _INT_TYPES or len(inp.shape) != 2:
                raise OnnxModelError(
                    f"{self.onnx_file}: input {inp.name!r} ({inp.type}, shape {inp.shape}) does not match the "
                    f"tokenizer; expected {expected}"
                )
            feeds[inp.name] = _INT_TYPES[inp.type]
        missing = [k for k in ("input_ids", "attention_mask") if k not in feeds]
        if missing:
            raise OnnxModelError(f"{self.onnx_file}: missing input(s) {', '.join(missing)}; expected {expected}")
        outputs = {o.name: o for o in self.session.get_outputs()}
        out = outputs.get(self.manifest.get("output", "last_hidden_state"))
        if out is None:
            rank3 = [o for o in outputs.values() if len(o.shape) == 3]
            out = rank3[0] if len(rank3) == 1 else None
        if out is None or len(out.shape) != 3 or out.type != "tensor(float)":
            found = ", ".join(f"{o.name} ({o.type}, shape {o.shape})" for o in outputs.values())
            raise OnnxModelError(f"{self.onnx_file}: outputs {found} do not match; expected {expected}")
        return feeds, out.name
