"""The training-pair file: one JSON object per line, the same for every source, model and framework.

A line is one (query, positive, mined negatives) example::

    {"id": "scifact:q13:d7523", "source": "scifact", "kind": "supervised", "qid": "scifact:q13",
     "query": "...", "pos_id": "scifact:7523", "positive": "...",
     "negatives": [{"id": "scifact:831", "text": "...", "miner": "bm25"}, ...]}

``kind`` is ``supervised`` (a judged question -> document pair), ``title`` (a title -> its abstract) or ``ict``
(inverse cloze: a sentence -> the rest of its abstract). ``miner`` says where a negative came from (``bm25`` or
``dense``). The first line of a dataset file is a header, ``{"format": "es-biomed-pairs/1", ...}``; a file
without it, or with another format, is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from es_biomed.errors import EsBiomedError

__all__ = ["FORMAT", "KINDS", "Negative", "Pair", "write_pairs", "read_pairs", "PairFileError"]

FORMAT = "es-biomed-pairs/1"
KINDS = ("supervised", "title", "ict")
MINERS = ("bm25", "dense")


class PairFileError(EsBiomedError):
    """A training-pair file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Negative:
    id: str
    text: str
    miner: str


@dataclass(frozen=True)
class Pair:
    id: str
    source: str
    kind: str
    qid: str
    query: str
    pos_id: str
    positive: str
    negatives: tuple[Negative, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "kind": self.kind,
            "qid": self.qid,
            "query": self.query,
            "pos_id": self.pos_id,
            "positive": self.positive,
            "negatives": [{"id": n.id, "text": n.text, "miner": n.miner} for n in self.negatives],
        }


def write_pairs(path: str | os.PathLike[str], pairs: Iterable[Pair], header: dict[str, Any] | None = None) -> int:
    """Write a pair file (header line first); returns the number of pairs. Refuses duplicate ids."""
    seen: set[str] = set()
    n = 0
    tmp = Path(f"{path}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"format": FORMAT, **(header or {})}, sort_keys=True) + "\n")
        for pair in pairs:
            if pair.id in seen:
                raise PairFileError(f"{path}: duplicate pair id {pair.id!r}")
            seen.add(pair.id)
            fh.write(json.dumps(pair.to_json(), ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    val = obj.get(key)
    if not isinstance(val, str):
        raise PairFileError(f"{where}: field {key!r} must be a string, got {type(val).__name__}")
    if not val.strip():
        raise PairFileError(f"{where}: field {key!r} is empty")
    return val


def read_pairs(path: str | os.PathLike[str]) -> Iterator[Pair]:
    """Read and validate a pair file.

    Raises:
        PairFileError: not a pair file (no or another ``format`` header), a line that is not a JSON object, an
            empty or missing query / positive / id, an unknown ``kind`` or ``miner``, or an id seen before; the
            message names the file and the 1-based line (and the earlier line for a duplicate).
    """
    p = Path(path)
    seen: dict[str, int] = {}
    with open(p, encoding="utf-8") as fh:
        first = fh.readline()
        try:
            header = json.loads(first) if first.strip() else None
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            got = header.get("format") if isinstance(header, dict) else None
            raise PairFileError(
                f"{p}: line 1: not a training-pair file (expected a header with format {FORMAT!r}, got "
                f"{got!r}); build one with training/build_dataset.py"
            )
        for lineno, line in enumerate(fh, start=2):
            where = f"{p}: line {lineno}"
            if not line.strip():
                raise PairFileError(f"{where}: empty line")
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PairFileError(f"{where}: malformed JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise PairFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            pid = _text(obj, "id", where)
            if pid in seen:
                raise PairFileError(f"{where}: duplicate pair id {pid!r} (first on line {seen[pid]})")
            seen[pid] = lineno
            kind = _text(obj, "kind", where)
            if kind not in KINDS:
                raise PairFileError(f"{where}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
            negs = obj.get("negatives", [])
            if not isinstance(negs, list):
                raise PairFileError(f"{where}: field 'negatives' must be a list")
            negatives = []
            for i, n in enumerate(negs):
                if not isinstance(n, dict):
                    raise PairFileError(f"{where}: negatives[{i}] must be an object")
                miner = _text(n, "miner", f"{where}: negatives[{i}]")
                if miner not in MINERS:
                    raise PairFileError(f"{where}: negatives[{i}]: unknown miner {miner!r}")
                negatives.append(
                    Negative(
                        _text(n, "id", f"{where}: negatives[{i}]"), _text(n, "text", f"{where}: negatives[{i}]"), miner
                    )
                )
            yield Pair(
                id=pid,
                source=_text(obj, "source", where),
                kind=kind,
                qid=_text(obj, "qid", where),
                query=_text(obj, "query", where),
                pos_id=_text(obj, "pos_id", where),
                positive=_text(obj, "positive", where),
                negatives=tuple(negatives),
            )
