"""Encoder interface shared by the torch and TensorFlow backends.

Subclasses implement :meth:`Encoder._embed_batch` (token ids in, pooled float vectors out); this base
class sorts texts by length so each batch pads little (as sentence-transformers does), restores the
input order and L2-normalizes the rows.
"""

from __future__ import annotations

import abc
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "Encoder",
    "EncoderInfo",
    "Pooling",
    "mean_pool_np",
    "read_pooling_config",
]

log = logging.getLogger(__name__)

Pooling = Literal["mean", "cls", "max"]


@dataclass(frozen=True)
class EncoderInfo:
    """What an index records about the encoder that built it."""

    name: str
    dims: int
    max_length: int
    pooling: str
    fingerprint: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Encoder(abc.ABC):
    """Text to unit-norm float32 vectors.

    Attributes:
        name: Human-readable name (registry name or path).
        dims: Output dimensionality.
        max_length: Maximum number of word-piece tokens per text (longer texts are truncated).
        pooling: How token vectors become one vector: ``"mean"``, ``"cls"`` or ``"max"``.
    """

    name: str
    dims: int
    max_length: int
    pooling: Pooling
    #: Prefixes some models need (e5: ``"query: "``); MiniLM uses none.
    query_prefix: str = ""
    document_prefix: str = ""

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A stable hash of the weights and settings; two encoders with equal fingerprints embed alike."""

    @property
    def info(self) -> EncoderInfo:
        return EncoderInfo(self.name, self.dims, self.max_length, self.pooling, self.fingerprint)

    @abc.abstractmethod
    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        """Embed one batch; returns ``[len(texts), dims]`` pooled (not yet normalized) vectors."""

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Embed ``texts`` in length-sorted batches.

        Returns:
            float32 array ``[len(texts), dims]`` with L2-normalized rows (zero rows stay zero).
        """
        texts = list(texts)
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batches = range(0, len(texts), batch_size)
        if show_progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="encode", unit="batch")
        for start in batches:
            idx = order[start : start + batch_size]
            out[idx] = self._embed_batch([texts[i] for i in idx])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def encode_queries(self, queries: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self.encode([self.query_prefix + q for q in queries], batch_size, show_progress)

    def encode_documents(self, docs: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self.encode([self.document_prefix + d for d in docs], batch_size, show_progress)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dims={self.dims}, max_length={self.max_length}, pooling={self.pooling!r})"


def mean_pool_np(token_vectors: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked mean over the token axis: ``[b, L, d], [b, L] -> [b, d]``."""
    m = mask[..., None].astype(token_vectors.dtype)
    return (token_vectors * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)


def read_pooling_config(model_dir: Path) -> tuple[Pooling, int | None]:
    """Read pooling mode and max length from a sentence-transformers layout, if present."""
    pooling: Pooling = "mean"
    max_len: int | None = None
    pool_cfg = model_dir / "1_Pooling" / "config.json"
    if pool_cfg.exists():
        cfg = json.loads(pool_cfg.read_text())
        if cfg.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif cfg.get("pooling_mode_max_tokens"):
            pooling = "max"
    st_cfg = model_dir / "sentence_bert_config.json"
    if st_cfg.exists():
        max_len = json.loads(st_cfg.read_text()).get("max_seq_length")
    return pooling, max_len
