"""How a QA reader cuts questions and passages into windows: the settings stored with the model (``qa_config.json``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from es_biomed.qa.errors import ModelFilesError

__all__ = ["QA_CONFIG_FILENAME", "ReaderConfig"]

QA_CONFIG_FILENAME = "qa_config.json"


@dataclass(frozen=True)
class ReaderConfig:
    """How questions and passages are cut into model inputs (the training settings, stored with the model).

    Attributes:
        max_length: WordPieces per window, ``[CLS]`` and both ``[SEP]`` included.
        doc_stride: Overlap of consecutive windows of a long passage, in pieces.
        max_query_length: The question is cut to this many pieces.
        max_answer_length: Longest answer, in pieces.
    """

    max_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64
    max_answer_length: int = 30

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def read(cls, model_dir: Path) -> ReaderConfig:
        """The model's ``qa_config.json`` (defaults where it is absent)."""
        path = model_dir / QA_CONFIG_FILENAME
        if not path.is_file():
            return cls()
        try:
            raw = json.loads(path.read_text())
        except ValueError as exc:
            raise ModelFilesError(f"{path}: not valid JSON: {exc}") from exc
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in raw.items() if k in known})
