"""Text analysis for the embedded engine, close to Elasticsearch's ``english`` analyzer.

ES ``english``: standard tokenizer, possessive stemmer, lowercase, English stop words, Porter stemmer.
Here (tantivy): ``simple`` tokenizer (splits on non-alphanumerics), drop tokens over 40 bytes, lowercase,
English stop words, Snowball English (Porter2) stemmer. Differences are documented in the README.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["AnalyzerConfig", "build_analyzer", "ANALYZER_NAME"]

ANALYZER_NAME = "es_biomed_en"


@dataclass(frozen=True)
class AnalyzerConfig:
    """Analyzer settings, stored with the index so a reopened index analyzes queries the same way."""

    stopwords: bool = True
    stemmer: str = "english"
    remove_long: int = 40

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_analyzer(cfg: AnalyzerConfig) -> Any:
    import tantivy

    builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(
        tantivy.Filter.remove_long(cfg.remove_long)
    )
    builder = builder.filter(tantivy.Filter.lowercase())
    if cfg.stopwords:
        builder = builder.filter(tantivy.Filter.stopword("english"))
    if cfg.stemmer:
        builder = builder.filter(tantivy.Filter.stemmer(cfg.stemmer))
    return builder.build()
