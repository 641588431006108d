"""Cut the fields of retrieved documents into the passages the reader reads, keeping character offsets.

A field (``abstract``, ``body``; the ``title`` only when a document has neither) is cut into windows of
``max_words`` words, ``overlap`` words shared with the previous window, the sizes of the index's passages
(:class:`~es_biomed.corpus.passages.PassageConfig`: 200 and 50). Unlike :func:`~es_biomed.corpus.passages.split_passages`,
which joins words and prefixes the title for embedding, a window is an exact slice ``field[start:end]`` of the
stored text, so an answer's offsets point into the document field it came from.

:func:`select_windows` takes the best ``n`` windows of a ranked hit list: every document's best window first (in
the documents' rank order), then every document's second-best, and so on; a document's windows are ordered by how
many distinct question words they contain (ties: document order). A one-window abstract per document thus gives
the top ``n`` documents.

Note: the embedded index stores ``title`` and ``abstract`` but not ``body``; Elasticsearch and OpenSearch return the
body in ``_source``, where its windows are read too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from es_biomed.corpus.passages import PassageConfig

__all__ = ["QA_FIELDS", "Window", "document_windows", "field_windows", "select_windows"]

#: Document fields the reader reads, in order; ``title`` is read only when the others are empty.
QA_FIELDS = ("abstract", "body")
_WORD = re.compile(r"\S+")
_TERM = re.compile(r"\w+")


@dataclass(frozen=True)
class Window:
    """One passage for the reader: ``text == source[field][start:end]`` of document ``doc_id``.

    Attributes:
        doc_id: The document.
        field: ``"abstract"``, ``"body"`` or ``"title"``.
        start: Character offset of the window in the field.
        end: Character offset just past it.
        text: The window's text.
        rank: 0-based rank of the document in the search results.
    """

    doc_id: str
    field: str
    start: int
    end: int
    text: str
    rank: int = 0


def field_windows(text: str, config: PassageConfig | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` character spans of the word windows of ``text`` (none for blank text).

    Example:
        >>> field_windows("a bb ccc dd e", PassageConfig(max_words=3, overlap=1))
        [(0, 8), (5, 13)]
    """
    config = config or PassageConfig()
    words = [m.span() for m in _WORD.finditer(text)]
    out: list[tuple[int, int]] = []
    step = config.max_words - config.overlap
    start = 0
    while start < len(words):
        last = min(start + config.max_words, len(words)) - 1
        out.append((words[start][0], words[last][1]))
        if start + config.max_words >= len(words):
            break
        start += step
    return out


def document_windows(
    doc_id: str, source: Mapping[str, Any], rank: int = 0, config: PassageConfig | None = None
) -> list[Window]:
    """The windows of one document's stored fields (:data:`QA_FIELDS`, else the title), in document order."""
    out = []
    for name in QA_FIELDS:
        text = source.get(name)
        if isinstance(text, str):
            out += [Window(doc_id, name, s, e, text[s:e], rank) for s, e in field_windows(text, config)]
    if not out and isinstance(source.get("title"), str):
        title = source["title"]
        out = [Window(doc_id, "title", s, e, title[s:e], rank) for s, e in field_windows(title, config)]
    return out


def select_windows(
    doc_ids: Sequence[str],
    sources: Mapping[str, Mapping[str, Any]],
    n: int,
    question: str = "",
    config: PassageConfig | None = None,
) -> list[Window]:
    """The ``n`` windows to read from ranked documents (see the module docstring for the order).

    Args:
        doc_ids: Document ids, best first (documents without stored fields are skipped).
        sources: Stored fields per document (``SearchResults.sources``).
        n: Windows to return at most.
        question: Orders each document's windows by the distinct question words they contain.
        config: Window sizes.

    Example:
        >>> src = {"a": {"abstract": "x y z w"}, "b": {"abstract": "q r"}}
        >>> [(w.doc_id, w.text) for w in select_windows(["a", "b"], src, 3, "w", PassageConfig(2, 0))]
        [('a', 'z w'), ('b', 'q r'), ('a', 'x y')]
    """
    terms = {t.lower() for t in _TERM.findall(question)}
    per_doc = []
    for rank, doc_id in enumerate(doc_ids):
        wins = document_windows(doc_id, sources.get(doc_id, {}), rank, config)
        if terms:
            wins = sorted(wins, key=lambda w: -len(terms & {t.lower() for t in _TERM.findall(w.text)}))
        per_doc.append(wins)
    out: list[Window] = []
    depth = 0
    while len(out) < n and any(depth < len(w) for w in per_doc):
        out += [w[depth] for w in per_doc if depth < len(w)][: n - len(out)]
        depth += 1
    return out
