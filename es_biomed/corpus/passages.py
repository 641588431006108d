"""Cut documents into the passages that get embedded.

Passage 0 is the title plus abstract (what BEIR dense models embed). A long ``body`` is cut into
overlapping windows of ``max_words`` words, ``overlap`` words shared with the previous window, each
prefixed with the title for context. A document's vector score is the best score over its passages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from es_biomed.corpus.types import Document

__all__ = ["PassageConfig", "split_passages", "embed_passages"]


@dataclass(frozen=True)
class PassageConfig:
    """How bodies are cut. Stored with the index."""

    max_words: int = 200
    overlap: int = 50

    def __post_init__(self) -> None:
        if self.max_words < 1 or not 0 <= self.overlap < self.max_words:
            raise ValueError(f"need max_words >= 1 and 0 <= overlap < max_words, got {self.max_words}, {self.overlap}")


def split_passages(doc: Document, config: PassageConfig | None = None) -> list[str]:
    """Passages of ``doc`` in order; never empty for a valid document.

    Example:
        >>> d = Document(id="1", title="T", body=" ".join(f"w{i}" for i in range(5)))
        >>> split_passages(d, PassageConfig(max_words=3, overlap=1))
        ['T', 'T w0 w1 w2', 'T w2 w3 w4']
    """
    config = config or PassageConfig()
    passages = [doc.text] if (doc.title or doc.abstract) else []
    words = doc.body.split()
    step = config.max_words - config.overlap
    start = 0
    while start < len(words):
        chunk = " ".join(words[start : start + config.max_words])
        passages.append(f"{doc.title} {chunk}" if doc.title else chunk)
        if start + config.max_words >= len(words):
            break
        start += step
    return passages


def embed_passages(
    docs: Sequence[Document], encoder: Any, config: PassageConfig | None = None, batch_size: int = 32
) -> tuple[list[list[str]], list[np.ndarray]]:
    """Split each document into passages and embed them all in one length-sorted pass.

    Args:
        docs: The documents.
        encoder: Anything with ``encode_documents(texts, batch_size=...)`` (an :class:`~es_biomed.encode.Encoder`).
        config: How bodies are cut.
        batch_size: Encoder batch size.

    Returns:
        ``(texts, blocks)``: per document, its passage texts and a ``[n_passages, dims]`` float32 block.
    """
    texts = [split_passages(d, config) for d in docs]
    vecs = encoder.encode_documents([p for ps in texts for p in ps], batch_size=batch_size)
    blocks, pos = [], 0
    for ps in texts:
        blocks.append(vecs[pos : pos + len(ps)])
        pos += len(ps)
    return texts, blocks
