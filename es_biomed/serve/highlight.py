"""Highlighted snippets: the words of a text whose analyzed form is a query term, and the best window around them.

Highlights are character ranges into plain text, never markup: the page builds ``<mark>`` elements from the
ranges with ``textContent``, so document text can never be read as HTML.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from functools import lru_cache

__all__ = ["Highlighter", "Snippet"]

ELLIPSIS = "… "


@dataclasses.dataclass(frozen=True)
class Snippet:
    """A piece of one field with the ``[start, end)`` character ranges of its matching words."""

    field: str
    text: str
    highlights: list[tuple[int, int]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"field": self.field, "text": self.text, "highlights": [list(r) for r in self.highlights]}


class Highlighter:
    """Finds query terms in document text with the index's own analyzer (so "ribosomes" matches "ribosome").

    Args:
        analyze: The index analyzer, text to tokens (``EmbeddedIndex.analyze``).
        max_chars: Snippet length before an ellipsis.
        cache_size: How many distinct words keep their analyzed form (a word is analyzed once).

    Example:
        >>> h = Highlighter(lambda t: [w.lower().rstrip("s") for w in re.findall(r"\\w+", t)])
        >>> h.ranges("Ribosomes and ribosome", h.terms("ribosome"))
        [(0, 9), (14, 22)]
    """

    def __init__(self, analyze: Callable[[str], list[str]], max_chars: int = 320, cache_size: int = 65_536) -> None:
        self.max_chars = max_chars
        self._analyze = analyze
        self._word = lru_cache(maxsize=cache_size)(lambda w: frozenset(analyze(w)))
        self._candidates = lru_cache(maxsize=1024)(self._candidate_pattern)

    def terms(self, query: str) -> frozenset[str]:
        """The analyzed terms of ``query``."""
        return frozenset(self._analyze(query))

    @staticmethod
    def _candidate_pattern(terms: frozenset[str]) -> re.Pattern[str]:
        """Words that can analyze to one of ``terms``. English (Snowball) stemming keeps a lowercased word's
        first two letters, except its exceptional forms dying / lying / tying (-> die, lie, tie): so only words
        that start like a term are analyzed, and the regex engine skips the rest without a Python call each."""
        starts = set()
        for t in terms:
            starts.add(t[:2])
            if len(t) >= 2 and t[1] == "i":
                starts.add(t[0] + "y")
        alternatives = "|".join(re.escape(p) for p in sorted(starts, key=len, reverse=True))
        return re.compile(rf"(?<!\w)(?:{alternatives})\w*", re.IGNORECASE)

    def ranges(self, text: str, terms: frozenset[str]) -> list[tuple[int, int]]:
        """Character ranges of the words of ``text`` that analyze to a term of ``terms``."""
        if not terms or not text:
            return []
        word = self._word
        return [
            (m.start(), m.end())
            for m in self._candidates(terms).finditer(text)
            if not word(m.group().lower()).isdisjoint(terms)
        ]

    def snippet(self, fields: Iterable[tuple[str, str]], terms: frozenset[str]) -> Snippet:
        """The window of at most ``max_chars`` with the most matches, over ``(name, text)`` fields in order of
        preference (the first non-empty one is used when nothing matches)."""
        best: tuple[int, int, str, str, list[tuple[int, int]]] | None = None
        for name, text in fields:
            if not text:
                continue
            found = self.ranges(text, terms)
            start, count = self._best_window(found)
            if best is None or count > best[0]:
                best = (count, start, name, text, found)
        if best is None:
            return Snippet("", "")
        _, start, name, text, found = best
        return self._cut(name, text, found, start)

    def _best_window(self, found: list[tuple[int, int]]) -> tuple[int, int]:
        """``(start offset, matches inside)`` of the window of ``max_chars`` holding the most matches."""
        best_start, best_count, j = 0, 0, 0
        for i, (s, _) in enumerate(found):
            j = max(j, i)
            while j + 1 < len(found) and found[j + 1][1] - s <= self.max_chars:
                j += 1
            if j - i + 1 > best_count:
                best_start, best_count = s, j - i + 1
        return best_start, best_count

    def _cut(self, name: str, text: str, found: list[tuple[int, int]], first_match: int) -> Snippet:
        if len(text) <= self.max_chars:
            return Snippet(name, text, found)
        # a little context before the first match, from a sentence start when one is near, else a word start
        start = max(0, first_match - self.max_chars // 6)
        sentence = text.rfind(". ", max(0, first_match - self.max_chars // 3), first_match)
        if sentence >= 0:
            start = sentence + 2
        elif start > 0:
            space = text.find(" ", start, first_match)
            start = space + 1 if space >= 0 else first_match
        end = min(len(text), start + self.max_chars)
        if end < len(text):
            space = text.rfind(" ", start, end)
            end = space if space > start else end
        prefix = ELLIPSIS if start > 0 else ""
        suffix = " …" if end < len(text) else ""
        shift = len(prefix) - start
        marks = [(s + shift, e + shift) for s, e in found if s >= start and e <= end]
        return Snippet(name, prefix + text[start:end] + suffix, marks)
