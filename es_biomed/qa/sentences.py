"""The sentence an answer stands in: a small rule-based splitter for scientific abstracts.

A sentence ends at ``.``, ``!`` or ``?`` (and any closing quotes or brackets after it) followed by whitespace and
then an upper-case letter, a digit or an opening bracket/quote, unless the word before the period is a common
abbreviation (``e.g.``, ``i.e.``, ``et al.``, ``Fig.``, ``vs.``...) or a single capital letter (an initial).
Offsets are kept, so the evidence sentence is an exact slice of the field.
"""

from __future__ import annotations

import re

__all__ = ["sentence_at", "sentence_spans"]

_BOUNDARY = re.compile(r"[.!?][\"')\]]*(?=\s+[\"'(\[]?[A-Z0-9])")
_ABBREV = {
    "e.g",
    "i.e",
    "al",
    "fig",
    "figs",
    "vs",
    "cf",
    "ca",
    "approx",
    "dr",
    "mr",
    "mrs",
    "ms",
    "prof",
    "no",
    "nos",
    "vol",
    "eq",
    "ref",
    "refs",
    "resp",
    "spp",
    "sp",
    "st",
    "etc",
    "inc",
    "ltd",
    "jr",
    "sr",
}


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text``, leading/trailing whitespace excluded.

    Example:
        >>> t = "BRCA1 is a gene (see Fig. 2). It is mutated, e.g. in breast cancer. Done"
        >>> [t[s:e] for s, e in sentence_spans(t)]
        ['BRCA1 is a gene (see Fig. 2).', 'It is mutated, e.g. in breast cancer.', 'Done']
    """
    cuts = []
    for m in _BOUNDARY.finditer(text):
        if text[m.start()] == ".":
            word = re.search(r"(\S+)$", text[: m.start()])
            token = word.group(1).lower().lstrip("([\"'") if word else ""
            if token in _ABBREV or re.fullmatch(r"[a-z]", token) or token.endswith(("e.g", "i.e")):
                continue
        cuts.append(m.end())
    spans = []
    start = 0
    for end in [*cuts, len(text)]:
        s, e = start, end
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
        start = end
    return spans


def sentence_at(text: str, start: int, end: int) -> tuple[int, int]:
    """The span of the sentence(s) holding ``text[start:end]``: from the start of the sentence ``start`` is in to
    the end of the sentence ``end`` is in (an answer that crosses a boundary gets both sentences).

    Raises:
        ValueError: the span is not inside ``text``.

    Example:
        >>> t = "Aspirin is old. Flumazenil reverses it. C."
        >>> s, e = sentence_at(t, 16, 26)
        >>> t[s:e]
        'Flumazenil reverses it.'
    """
    if not 0 <= start < end <= len(text):
        raise ValueError(f"span [{start}, {end}) is not inside a text of {len(text)} characters")
    spans = sentence_spans(text)
    first = next((s for s, e in spans if s <= start < e), start)
    last = next((e for s, e in spans if s < end <= e), end)
    return min(first, start), max(last, end)
