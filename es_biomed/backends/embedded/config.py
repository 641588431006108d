"""What an embedded index records about itself (``es_biomed.json``): the encoder identity, passage and analyzer
settings and the schema version, written once at creation and merged back on open."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from es_biomed.backends.embedded.ann import AnnSettings
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
    #: The ANN graph's settings when the index keeps one (``es-biomed ann build``), else None (exact kNN only).
    ann: AnnSettings | None = None

    @property
    def dims(self) -> int:
        return int(self.encoder["dims"])

    def to_dict(self) -> dict[str, Any]:
        out = {
            "version": self.version,
            "encoder": self.encoder,
            "passages": asdict(self.passages),
            "analyzer": self.analyzer.to_dict(),
        }
        if self.ann is not None:
            out["ann"] = self.ann.to_dict()
        return out

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
            ann=AnnSettings.from_dict(d["ann"]) if d.get("ann") else None,
        )

    def write(self, index_path: str | os.PathLike[str]) -> None:
        """Replace ``es_biomed.json`` atomically (written, fsynced, renamed)."""
        p = Path(index_path)
        tmp = p / (META_FILE + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps(self.to_dict(), indent=2))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(p / META_FILE)
