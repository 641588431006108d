"""An encoder wrapper that remembers every vector it produced, keyed by the exact text.

Use it to give two indexes the very same vectors while paying for each text once: the embedded index and a
cluster, or Elasticsearch and OpenSearch, in parity measurements. It has the wrapped encoder's identity
(``info``, ``fingerprint``), because it returns exactly the vectors that encoder produced.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from es_biomed.encode.base import Encoder

__all__ = ["CachedEncoder"]


class CachedEncoder(Encoder):
    """Memoizing wrapper around ``inner``.

    Example:
        >>> enc = CachedEncoder(load_encoder("all-MiniLM-L6-v2"))   # doctest: +SKIP
        >>> a = enc.encode(["aspirin"]); b = enc.encode(["aspirin", "fever"])   # "aspirin" is embedded once
    """

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dims = inner.dims
        self.max_length = inner.max_length
        self.pooling = inner.pooling
        self.query_prefix = inner.query_prefix
        self.document_prefix = inner.document_prefix
        self._cache: dict[str, np.ndarray] = {}

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    def __len__(self) -> int:
        return len(self._cache)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - encode() is overridden
        return self.inner._embed_batch(texts)

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for t, v in zip(missing, self.inner.encode(missing, batch_size, show_progress), strict=True):
                self._cache[t] = v
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = self._cache[t]
        return out
