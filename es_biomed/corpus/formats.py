"""The corpus formats es-biomed reads, and how a file's format is told from its content."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from es_biomed.corpus.pubmedqa import looks_like_pubmedqa

__all__ = ["CORPUS_FORMATS", "LINE_FORMATS", "QUESTION_FORMATS", "CorpusFormat", "detect_format"]

CorpusFormat = Literal["beir", "breathe", "cord19", "bioasq", "bioasq-golden", "pubmedqa"]


#: Formats whose files also carry questions (read whole, by :func:`load_questioned`).
QUESTION_FORMATS: tuple[CorpusFormat, ...] = ("bioasq", "bioasq-golden", "pubmedqa")


#: Every format, for error messages and CLI choices.
CORPUS_FORMATS: tuple[CorpusFormat, ...] = ("beir", "breathe", "cord19", "bioasq", "bioasq-golden", "pubmedqa")


#: Formats read line by line, whose batches are byte ranges.
LINE_FORMATS: tuple[CorpusFormat, ...] = ("beir", "breathe")


def _json_format(p: Path) -> CorpusFormat:
    try:
        data = json.loads(p.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "bioasq"  # its reader reports the file's error
    if isinstance(data, dict) and isinstance(data.get("questions"), list):
        return "bioasq-golden"
    return "pubmedqa" if looks_like_pubmedqa(data) else "bioasq"


def detect_format(path: str | os.PathLike[str]) -> CorpusFormat:
    """Guess the format: a BEIR directory, a ``.csv`` (CORD-19), a ``.json`` file (BioASQ SQuAD, BioASQ golden
    or PubMedQA, told apart by their top-level keys) or JSONL (BEIR when the first record has ``_id``)."""
    p = Path(path)
    if p.is_dir():
        return "beir"
    if p.suffix.lower() == ".csv":
        return "cord19"
    if p.suffix.lower() == ".json":
        return _json_format(p)
    with open(p, "rb") as fh:
        first = fh.readline()
    try:
        obj = json.loads(first)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "breathe"
    return "beir" if isinstance(obj, dict) and "_id" in obj else "breathe"
