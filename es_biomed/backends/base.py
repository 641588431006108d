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
    """Ranked hits plus the stored fields of each hit (``{doc_id: {"title": ..., ...}}``)."""

    hits: list[Hit]
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    took_ms: float = 0.0

    def to_json(self) -> list[dict[str, Any]]:
        return [{"doc_id": h.doc_id, "score": h.score, **self.sources.get(h.doc_id, {})} for h in self.hits]
