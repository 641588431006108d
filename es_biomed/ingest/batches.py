"""Cut a corpus into batches *by reference*: a file plus a byte range (JSONL) or a record range (CSV, SQuAD).

A :class:`BatchRef` is what travels through the broker. It names the file, never the documents, so a task
message stays a few hundred bytes whatever the corpus, and a batch that runs twice reads the same records.

Example:
    >>> refs = plan_batches("data/scifact-sample/corpus.jsonl", batch_size=200)  # doctest: +SKIP
    >>> refs[1].to_dict()                                                          # doctest: +SKIP
    {'path': '/abs/data/scifact-sample/corpus.jsonl', 'fmt': 'beir', 'start': 263418, 'end': 527209,
     'first_line': 201, 'records': 200, 'n': 1}
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from es_biomed.corpus.formats import LINE_FORMATS, CorpusFormat, detect_format
from es_biomed.corpus.readers import iter_documents
from es_biomed.corpus.records import OnError, Span
from es_biomed.corpus.types import Document

__all__ = ["BatchRef", "plan_batches", "read_batch"]


@dataclass(frozen=True)
class BatchRef:
    """One batch of a corpus, by reference.

    Attributes:
        path: Absolute path of the corpus file (for a BEIR directory, its ``corpus.jsonl``).
        fmt: Corpus format.
        start: First byte (JSONL) or first record index (CSV rows, SQuAD contexts).
        end: Byte or record index just past the batch.
        first_line: Line number of the batch's first line (JSONL), so errors name the file's own lines.
        records: Number of records (lines, rows or contexts) in the batch, bad ones included.
        n: Position of the batch in its job (0-based).
    """

    path: str
    fmt: CorpusFormat
    start: int
    end: int
    first_line: int
    records: int
    n: int

    @property
    def span(self) -> Span:
        return Span(self.start, self.end, self.first_line)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BatchRef:
        """Rebuild a reference from a task message; unknown or missing keys raise ``ValueError``."""
        try:
            return cls(**d)
        except TypeError as exc:
            raise ValueError(f"malformed batch reference {d!r}: {exc}") from None


def _corpus_file(path: Path, fmt: CorpusFormat) -> Path:
    return path / "corpus.jsonl" if fmt == "beir" and path.is_dir() else path


def _line_batches(path: Path, fmt: CorpusFormat, batch_size: int) -> Iterator[BatchRef]:
    n = start = 0
    first_line = line = 1
    count = 0
    pos = 0
    with open(path, "rb") as fh:
        for raw in fh:
            pos += len(raw)
            count += 1
            line += 1
            if count == batch_size:
                yield BatchRef(str(path), fmt, start, pos, first_line, count, n)
                n, start, first_line, count = n + 1, pos, line, 0
    if count:
        yield BatchRef(str(path), fmt, start, pos, first_line, count, n)


def _record_count(path: Path, fmt: CorpusFormat) -> int:
    if fmt == "cord19":
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            return sum(1 for _ in csv.reader(fh)) - 1
    return sum(1 for _ in iter_documents(path, fmt))  # bioasq: the deduplicated contexts


def plan_batches(
    path: str | os.PathLike[str], fmt: CorpusFormat | None = None, batch_size: int = 64
) -> list[BatchRef]:
    """Cut ``path`` into batches of ``batch_size`` records.

    JSONL (``beir``, ``breathe``) is cut into byte ranges of whole lines in one streaming pass; CSV
    (``cord19``) and SQuAD JSON (``bioasq``) into record ranges. Records are not validated here: a bad one is
    found (and quarantined) by the task that reads its batch.

    Raises:
        ValueError: ``batch_size`` < 1.
        FileNotFoundError: ``path`` does not exist.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    p = Path(path).resolve()
    if not p.exists():
        raise FileNotFoundError(f"corpus {p} not found")
    fmt = fmt or detect_format(p)
    f = _corpus_file(p, fmt)
    if fmt in LINE_FORMATS:
        return list(_line_batches(f, fmt, batch_size))
    total = _record_count(f, fmt)
    return [
        BatchRef(str(f), fmt, s, min(s + batch_size, total), 1, min(batch_size, total - s), n)
        for n, s in enumerate(range(0, total, batch_size))
    ]


def read_batch(ref: BatchRef, *, on_error: OnError = "quarantine", sink: Any = None) -> list[Document]:
    """The valid documents of one batch; bad records go to ``sink`` (anything with ``reject(err, raw)``)."""
    return list(iter_documents(ref.path, ref.fmt, on_error=on_error, sink=sink, span=ref.span))
