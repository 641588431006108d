"""Text analysis for the embedded engine, matched to Elasticsearch's ``english`` analyzer as closely as tantivy allows.

ES ``english`` = ``standard`` tokenizer (UAX#29 word boundaries), ``english_possessive_stemmer``, ``lowercase``,
``english`` stop words (Lucene's 33), ``porter_stem`` (Porter 1).

The default here (``tokenizer="uax29"``) is a tantivy regex tokenizer that follows UAX#29's word rules (letters join
across ``: · . '``, digits across ``. , ;``, so ``3.5``, ``1,000``, ``U.S.A`` and ``don't`` stay whole; Han,
Hiragana and pictographs are one-character tokens) and emits a word-final ``'s`` as its own token, which the stop
filter then drops (the possessive filter); then tokens over 256 bytes are dropped, lowercase, Lucene's 33 stop
words (tantivy's ``english`` list is exactly that set), and the Snowball English (Porter 2) stemmer.

Measured against Lucene 8.7's real ``EnglishAnalyzer`` on 2,000 SciFact documents (``benchmarks/analyzer_parity.py``):
apart from the stemmer, token streams agree on 99.4% of documents (token-set Jaccard 1.000). What tantivy cannot
express: Porter 1 (only Snowball stemmers exist; 3.5% of word types stem differently, e.g. ``has`` ha/has,
``using`` us/use, ``pathway`` pathwai/pathway), the possessive after a digit (``p53's``: ES keeps an ``s`` token),
splitting of tokens over 255 characters (dropped here), and UAX#29 details for scripts absent from biomedical
English. ``tokenizer="simple"`` is the earlier analyzer (non-alphanumeric split, 40-byte limit), kept so older
indexes reopen unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal

__all__ = [
    "AnalyzerConfig",
    "build_analyzer",
    "count_query_terms",
    "ANALYZER_NAME",
    "LUCENE_STOP",
    "POSSESSIVE_TOKENS",
    "UAX29_POSSESSIVE",
    "LUCENE_MAX_TOKEN_LENGTH",
]

ANALYZER_NAME = "es_biomed_en"

# Lucene EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (= ES `_english_`).
LUCENE_STOP = (
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they"
    " this to was will with"
).split()
APOSTROPHES = "'\u2019\uff07"  # the three EnglishPossessiveFilter strips
POSSESSIVE_TOKENS = [a + "s" for a in APOSTROPHES]  # emitted by the regex tokenizers below, then stopped

# UAX#29 word-break classes that join two letters / two digits (Unicode 6.3 WordBreakProperty).
MID_LETTER = ":\u00b7\u0387\u05f4\u2027\ufe13\ufe55\uff1a"
MID_NUM_LET = ".\u2018\u2024\ufe52\uff0e"  # + the apostrophes (MidNumLetQ)
MID_NUM = ",;\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe10\ufe14\ufe50\ufe54\uff0c\uff1b"


def _rx(chars: str) -> str:
    """Characters as escapes for a Rust regex character class."""
    return "".join(f"\\x{{{ord(c):x}}}" for c in chars)


# --- tantivy regex tokenizers (Rust `regex` crate: no look-around, but \b / \B and class set operations) -------
#
# A letter is Alphabetic or a mark, not a digit, not Han/Hiragana (those are one-char tokens in UAX#29);
# an "other" word char (underscore = ExtendNumLet, joiners, Format chars such as the soft hyphen) glues.
_L = r"[\p{Alphabetic}\p{M}&&[^\p{Nd}\p{Han}\p{Hiragana}]]"
_L_NOT_S = r"[\p{Alphabetic}\p{M}&&[^\p{Nd}\p{Han}\p{Hiragana}sS]]"
_D = r"\p{Nd}"
_X = r"[[\w\p{Cf}]&&[^\p{Alphabetic}\p{M}\p{Nd}\x{200b}]]"  # underscore, joiners, format chars (soft hyphen)
_X_LEAD = r"[\w&&[^\p{Alphabetic}\p{M}\p{Nd}]]"  # a format char only attaches to what precedes it (WB4)
_APOS = f"[{_rx(APOSTROPHES)}]"
# Letter MID letter joins (WB6/7), except an apostrophe + s ending the word: that is the possessive, which the
# first alternative of the pattern turns into its own "'s" token so the stop filter can drop it.
_LETTER_JOIN = rf"(?:[{_rx(MID_LETTER + MID_NUM_LET)}]{_L}|{_APOS}(?:{_L_NOT_S}|[sS]\B))"
_DIGIT_JOIN = rf"[{_rx(MID_NUM + MID_NUM_LET + APOSTROPHES)}]{_D}"  # digit MID digit joins (WB11/12)
_RUN = rf"(?:{_L}{_LETTER_JOIN}*|{_D}(?:{_DIGIT_JOIN})*)"
# An underscore-only run is no token (at least one letter/digit run). Han, Hiragana and pictographs (Lucene's
# <EMOJI> tokens: (R), (C), TM, arrows) are one-char tokens.
UAX29_POSSESSIVE = (
    rf"{_APOS}[sS]\b|[\p{{Han}}\p{{Hiragana}}\p{{Extended_Pictographic}}]|{_X_LEAD}*{_RUN}(?:{_RUN}|{_X})*"
)


@dataclass(frozen=True)
class AnalyzerConfig:
    """Analyzer settings, stored with the index so a reopened index analyzes queries the same way."""

    tokenizer: Literal["uax29", "simple"] = "uax29"
    stopwords: bool = True
    stemmer: str = "english"
    remove_long: int = 256

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnalyzerConfig:
        """Indexes written before the ``tokenizer`` setting existed used ``simple``."""
        return cls(**{"tokenizer": "simple", **d})


def build_analyzer(cfg: AnalyzerConfig) -> Any:
    import tantivy

    if cfg.tokenizer == "uax29":
        tokenizer = tantivy.Tokenizer.regex(UAX29_POSSESSIVE)
    elif cfg.tokenizer == "simple":
        tokenizer = tantivy.Tokenizer.simple()
    else:
        raise ValueError(f"tokenizer must be 'uax29' or 'simple', got {cfg.tokenizer!r}")
    builder = tantivy.TextAnalyzerBuilder(tokenizer).filter(tantivy.Filter.remove_long(cfg.remove_long))
    builder = builder.filter(tantivy.Filter.lowercase())
    if cfg.stopwords:
        builder = builder.filter(tantivy.Filter.custom_stopword(LUCENE_STOP + POSSESSIVE_TOKENS))
    elif cfg.tokenizer == "uax29":
        builder = builder.filter(tantivy.Filter.custom_stopword(POSSESSIVE_TOKENS))
    if cfg.stemmer:
        builder = builder.filter(tantivy.Filter.stemmer(cfg.stemmer))
    return builder.build()


#: Lucene's ``StandardTokenizer`` splits a longer token into pieces of this many (UTF-16) characters.
LUCENE_MAX_TOKEN_LENGTH = 255


@lru_cache(maxsize=1)
def _query_tokenizer() -> Any:
    import tantivy

    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(UAX29_POSSESSIVE)).build()


def count_query_terms(text: str) -> int:
    """How many term clauses a match query on ``text`` holds per field, at most, on every engine: the tokens of the
    project's UAX#29 tokenizer (the embedded engine's, matched to Elasticsearch's ``standard`` tokenizer) *before*
    the filters, duplicates included, a token over :data:`LUCENE_MAX_TOKEN_LENGTH` characters counted as the pieces
    Lucene cuts it into.

    It is an upper bound of the terms both analyzers keep: the ``english`` analyzer only drops tokens after the
    tokenizer (stop words, the possessive ``'s``), and where the two tokenizers differ it is towards more tokens
    here (``John's`` is ``John`` + ``'s``, a digit's possessive ``p53's`` is two tokens in both, a long token is one
    in tantivy and several in Lucene, counted as several).

    Example:
        >>> count_query_terms("the p53's role in BRCA1"), count_query_terms("x" * 600)
        (6, 3)
    """
    n = 0
    for tok in _query_tokenizer().analyze(text):
        units = len(tok.encode("utf-16-le")) // 2
        n += -(-units // LUCENE_MAX_TOKEN_LENGTH)
    return n
