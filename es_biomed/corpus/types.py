"""Interchange types: documents, retrieval datasets, and the BEIR-style run/qrels dicts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Document", "RetrievalSet", "Run", "Qrels", "SourceRef"]

#: A run: ``{qid: {doc_id: score}}`` (BEIR / pytrec_eval layout).
Run = dict[str, dict[str, float]]
#: Relevance judgements: ``{qid: {doc_id: grade}}``.
Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class SourceRef:
    """Where a record came from: file and 1-based line (or row / JSON path)."""

    path: str
    line: int | str


@dataclass(frozen=True)
class Document:
    """One corpus document in the BREATHE-style schema.

    ``abstract`` holds the main short text (BEIR ``text``, CORD-19 ``abstract``, a BioASQ context);
    ``body`` the optional full text, which is cut into overlapping passages at index time.
    """

    id: str
    title: str = ""
    abstract: str = ""
    body: str = ""
    source: str = ""
    doi: str = ""
    pmid: str = ""
    date: str = ""
    journal: str = ""
    authors: tuple[str, ...] = ()
    origin: SourceRef | None = field(default=None, compare=False)

    @property
    def year(self) -> int | None:
        """Year parsed from ``date`` (``YYYY`` prefix), or None."""
        head = self.date[:4]
        return int(head) if len(head) == 4 and head.isdigit() else None

    @property
    def text(self) -> str:
        """Title and abstract joined the way BEIR dense models see them."""
        return f"{self.title} {self.abstract}".strip() if self.title else self.abstract

    def to_json(self) -> dict[str, Any]:
        """The BREATHE-style JSON object (the ``origin`` bookkeeping is left out)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "origin"}
        out["authors"] = list(self.authors)
        return out


@dataclass
class RetrievalSet:
    """A retrieval task: a corpus, queries and relevance judgements (BEIR layout in memory)."""

    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: Qrels
    #: Per-query doc ids to drop from runs before scoring (used by the BioASQ Jaccard protocol).
    ignore: dict[str, set[str]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
