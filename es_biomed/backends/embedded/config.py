"""What an embedded index records about itself (``es_biomed.json``): the encoder identity, passage and analyzer
settings and the schema version, written once at creation and merged back on open."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from es_biomed.corpus.passages import PassageConfig
from es_biomed.errors import EsBiomedError
from es_biomed.query.analysis import AnalyzerConfig

__all__ = ["META_FILE", "SCHEMA_VERSION", "IndexConfig"]

SCHEMA_VERSION = 1
META_FILE = "es_biomed.json"


@dataclass(frozen=True)
class IndexConfig:
    """Settings saved next to the index and merged back on open."""

    encoder: dict[str, Any]
    passages: PassageConfig = field(default_factory=PassageConfig)
    analyzer: AnalyzerConfig = field(default_factory=AnalyzerConfig)
    version: int = SCHEMA_VERSION

    @property
    def dims(self) -> int:
        return int(self.encoder["dims"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "encoder": self.encoder,
            "passages": asdict(self.passages),
            "analyzer": self.analyzer.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IndexConfig:
        if d.get("version") != SCHEMA_VERSION:
            raise EsBiomedError(
                f"index schema version {d.get('version')} is not supported (expected {SCHEMA_VERSION}); rebuild the index"
            )
        return cls(
            encoder=d["encoder"],
            passages=PassageConfig(**d["passages"]),
            analyzer=AnalyzerConfig.from_dict(d["analyzer"]),
        )
