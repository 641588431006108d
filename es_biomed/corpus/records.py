"""Corpus records: reading JSONL and CSV record by record, validating each field, quarantining bad ones.

The plumbing every corpus reader shares (:mod:`es_biomed.corpus.readers`, :mod:`es_biomed.corpus.bioasq`,
:mod:`es_biomed.corpus.pubmedqa`). A bad record (malformed, empty, oversized, not UTF-8, wrong field type) raises
:class:`~es_biomed.errors.RecordError` naming the file, line and field; with ``on_error="quarantine"`` it goes to a
:class:`RejectSink` instead and reading continues.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from es_biomed.corpus.types import Document, SourceRef
from es_biomed.errors import RecordError

__all__ = [
    "MAX_RECORD_BYTES",
    "BadRecord",
    "OnError",
    "RejectSink",
    "Span",
    "authors_field",
    "beir_fields",
    "cord19_fields",
    "csv_records",
    "document_from_fields",
    "jsonl_records",
    "read_json_file",
    "route_records",
    "slice_records",
    "str_field",
]

OnError = Literal["raise", "quarantine"]


#: Records larger than this (bytes of one JSONL line or CSV row) are rejected as oversized.
MAX_RECORD_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Span:
    """A slice of a corpus file, by reference: a byte range for JSONL, a record range for CSV and SQuAD JSON.

    Attributes:
        start: First byte (JSONL; a line start) or index of the first record (0-based, CSV rows / contexts).
        end: Byte or record index just past the slice.
        first_line: 1-based line number of the first line of a JSONL byte range (for error locations).
    """

    start: int
    end: int
    first_line: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end or self.first_line < 1:
            raise ValueError(f"invalid span {self}: need 0 <= start <= end and first_line >= 1")


class RejectSink:
    """Dead-letter file for quarantined records (JSONL: file, line, field, error, raw).

    Opened lazily, so a clean run leaves no file behind.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.count = 0
        self._fh: io.TextIOWrapper | None = None

    def reject(self, err: RecordError, raw: bytes | str | None = None) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        rec = {**err.to_dict(), "raw": (raw or "").rstrip("\r\n")[:2000]}
        self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RejectSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def str_field(obj: dict[str, Any], key: str, path: str, line: int | str, required: bool = False) -> str:
    val = obj.get(key)
    if val is None:
        if required:
            raise RecordError(path, line, key, "missing required field")
        return ""
    if isinstance(val, bool) or not isinstance(val, (str, int, float)):
        raise RecordError(path, line, key, f"expected a string, got {type(val).__name__}")
    text = str(val).strip()
    if required and not text:
        raise RecordError(path, line, key, "empty value")
    return text


def authors_field(val: Any, path: str, line: int | str) -> tuple[str, ...]:
    if val is None or val == "":
        return ()
    if isinstance(val, str):
        return tuple(a.strip() for a in val.split(";") if a.strip())
    if isinstance(val, list) and all(isinstance(a, str) for a in val):
        return tuple(a.strip() for a in val if a.strip())
    raise RecordError(path, line, "authors", "expected a list of strings or a ';'-separated string")


def document_from_fields(fields: dict[str, Any], path: str, line: int | str) -> Document:
    """Build and validate a Document from BREATHE-named fields."""
    doc = Document(
        id=str_field(fields, "id", path, line, required=True),
        title=str_field(fields, "title", path, line),
        abstract=str_field(fields, "abstract", path, line),
        body=str_field(fields, "body", path, line),
        source=str_field(fields, "source", path, line),
        doi=str_field(fields, "doi", path, line),
        pmid=str_field(fields, "pmid", path, line),
        date=str_field(fields, "date", path, line),
        journal=str_field(fields, "journal", path, line),
        authors=authors_field(fields.get("authors"), path, line),
        origin=SourceRef(path, line),
    )
    if not (doc.title or doc.abstract or doc.body):
        raise RecordError(path, line, "title/abstract/body", "empty record: no text to index")
    return doc


def beir_fields(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return {
        "id": obj.get("_id", obj.get("id")),
        "title": obj.get("title"),
        "abstract": obj.get("text"),
        "body": obj.get("body"),
        "source": meta.get("source") or meta.get("source_x"),
        "doi": meta.get("doi"),
        "pmid": meta.get("pmid") or meta.get("pubmed_id"),
        "date": meta.get("date") or meta.get("publish_time"),
        "journal": meta.get("journal"),
        "authors": meta.get("authors"),
    }


class BadRecord(Exception):
    """Internal carrier of a RecordError plus the raw record, for quarantining."""

    def __init__(self, err: RecordError, raw: bytes | str | None) -> None:
        self.err, self.raw = err, raw


def jsonl_records(path: Path, max_record_bytes: int, span: Span | None = None) -> Iterator[tuple[int, bytes, Any]]:
    """JSONL records; a bad line is yielded as a BadRecord marker so iteration continues.

    With ``span``, only the lines in the byte range ``[span.start, span.end)`` are read (``span.start`` must be
    a line start), numbered from ``span.first_line``.
    """
    with open(path, "rb") as fh:
        first, limit = 1, None
        if span is not None:
            fh.seek(span.start)
            first, limit = span.first_line, span.end - span.start
        lines = fh if limit is None else _bounded_lines(fh, limit)
        for lineno, raw in enumerate(lines, start=first):
            try:
                yield from _parse_line(path, lineno, raw, max_record_bytes)
            except BadRecord as bad:
                yield lineno, raw, bad


def _bounded_lines(fh: io.BufferedReader, limit: int) -> Iterator[bytes]:
    """The lines of ``fh`` from its position until ``limit`` bytes are consumed."""
    used = 0
    while used < limit:
        raw = fh.readline()
        if not raw:
            return
        used += len(raw)
        yield raw


def _parse_line(path: Path, lineno: int, raw: bytes, max_record_bytes: int) -> Iterator[tuple[int, bytes, Any]]:
    if len(raw) > max_record_bytes:
        raise BadRecord(
            RecordError(str(path), lineno, "(record)", f"oversized record: {len(raw)} bytes > {max_record_bytes}"),
            raw[:2000],
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRecord(
            RecordError(str(path), lineno, "(record)", f"not valid UTF-8 ({exc.reason} at byte {exc.start})"), raw
        ) from None
    if not text.strip():
        raise BadRecord(RecordError(str(path), lineno, "(record)", "empty record (blank line)"), raw)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRecord(
            RecordError(str(path), lineno, "(record)", f"malformed JSON: {exc.msg} at column {exc.colno}"), raw
        ) from None
    if not isinstance(obj, dict):
        raise BadRecord(
            RecordError(str(path), lineno, "(record)", f"expected a JSON object, got {type(obj).__name__}"), raw
        )
    yield lineno, raw, obj


def route_records(
    records: Iterator[tuple[int, Any, Any]],
    build: Callable[[dict[str, Any], int], Document],
    on_error: OnError,
    sink: RejectSink | None,
) -> Iterator[Document]:
    if on_error not in ("raise", "quarantine"):
        raise ValueError(f"on_error must be 'raise' or 'quarantine', got {on_error!r}")
    if on_error == "quarantine" and sink is None:
        raise ValueError("on_error='quarantine' needs a RejectSink")
    for lineno, raw, obj in records:
        try:
            if isinstance(obj, BadRecord):
                raise obj.err
            yield build(obj, lineno)
        except RecordError as err:
            if on_error == "raise":
                raise
            assert sink is not None
            sink.reject(err, obj.raw if isinstance(obj, BadRecord) else raw)


def csv_records(path: Path, max_record_bytes: int) -> Iterator[tuple[int, str, Any]]:
    """CSV rows as dicts, numbered by the line the row starts on (the header is line 1).

    The file is streamed and decoded with ``surrogateescape`` so one bad byte fails only its own row, and the
    error names the field that holds it.
    """
    with open(
        path, encoding="utf-8-sig", errors="surrogateescape", newline=""
    ) as fh:  # streamed: metadata.csv is large
        yield from _csv_dict_rows(path, csv.DictReader(fh), max_record_bytes)


def _csv_dict_rows(path: Path, reader: csv.DictReader[str], max_record_bytes: int) -> Iterator[tuple[int, str, Any]]:
    if reader.fieldnames is None:
        return
    start = reader.line_num + 1
    for row in reader:
        lineno, start = start, reader.line_num + 1
        raw = json.dumps(row, ensure_ascii=False, default=str)
        if None in row:
            yield (
                lineno,
                raw,
                BadRecord(RecordError(str(path), lineno, "(record)", "more columns than the header"), raw),
            )
            continue
        bad = next((k for k, v in row.items() if v and _SURROGATE.search(v)), None)
        if bad is not None:
            yield (
                lineno,
                raw,
                BadRecord(RecordError(str(path), lineno, bad, "not valid UTF-8"), raw.encode("utf-8", "replace")),
            )
            continue
        size = sum(len(v.encode()) for v in row.values() if v)
        if size > max_record_bytes:
            yield (
                lineno,
                raw,
                BadRecord(
                    RecordError(str(path), lineno, "(record)", f"oversized record: {size} bytes > {max_record_bytes}"),
                    raw,
                ),
            )
            continue
        yield lineno, raw, row


_SURROGATE = re.compile("[\\udc80-\\udcff]")


def cord19_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row.get("cord_uid"),
        "title": row.get("title"),
        "abstract": row.get("abstract"),
        "source": row.get("source_x"),
        "doi": row.get("doi"),
        "pmid": row.get("pubmed_id"),
        "date": row.get("publish_time"),
        "journal": row.get("journal"),
        "authors": row.get("authors"),
    }


def slice_records(it: Iterator[Any], span: Span | None) -> Iterator[Any]:
    """Records ``span.start`` to ``span.end`` (0-based) of a record stream, or all of them."""
    return it if span is None else itertools.islice(it, span.start, span.end)


def read_json_file(path: str | os.PathLike[str]) -> Any:
    """Parse a whole UTF-8 JSON file (BioASQ, PubMedQA, SQuAD QA sets).

    Raises:
        RecordError: the file is not UTF-8 or not JSON; names the file (and the line of a syntax error).
    """
    p = str(path)
    try:
        return json.loads(Path(p).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RecordError(p, "(file)", "(record)", f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise RecordError(p, exc.lineno, "(record)", f"malformed JSON: {exc.msg}") from None
