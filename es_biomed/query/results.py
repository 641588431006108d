"""What every backend returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["Hit", "SearchResults"]


class Hit(NamedTuple):
    """One ranked document."""

    doc_id: str
    score: float


@dataclass
class SearchResults:
    """Ranked hits plus the stored fields of each hit (``{doc_id: {"title": ..., ...}}``).

    ``parts`` holds the score parts of each hit where the backend reports them (the embedded engine does):
    ``{doc_id: {"bm25": first-pass score, "cosine": cosine with the best passage, "rrf": fused score}}``, each
    key present only when that part was computed for the hit (``hit.score`` is the final score).
    """

    hits: list[Hit]
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    took_ms: float = 0.0
    parts: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> list[dict[str, Any]]:
        return [{"doc_id": h.doc_id, "score": h.score, **self.sources.get(h.doc_id, {})} for h in self.hits]
