"""Corpus readers: BEIR, BREATHE-style JSONL and CORD-19 ``metadata.csv``.

Every reader yields :class:`~es_biomed.corpus.types.Document` and validates each record. A bad record
(malformed, empty, oversized, not UTF-8, wrong field type) raises :class:`~es_biomed.errors.RecordError`
naming the file, line and field; with ``on_error="quarantine"`` it goes to a :class:`RejectSink` instead
and reading continues.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from es_biomed.corpus.types import Document, Qrels, RetrievalSet, SourceRef
from es_biomed.errors import RecordError

__all__ = [
    "CorpusFormat",
    "CORPUS_FORMATS",
    "LINE_FORMATS",
    "Span",
    "OnError",
    "RejectSink",
    "MAX_RECORD_BYTES",
    "detect_format",
    "expand_paths",
    "load_questioned",
    "QUESTION_FORMATS",
    "read_json_file",
    "iter_documents",
    "load_beir",
    "read_queries",
    "read_qrels",
]

CorpusFormat = Literal["beir", "breathe", "cord19", "bioasq", "bioasq-golden", "pubmedqa"]
#: Formats whose files also carry questions (read whole, by :func:`load_questioned`).
QUESTION_FORMATS: tuple[CorpusFormat, ...] = ("bioasq", "bioasq-golden", "pubmedqa")
#: Every format, for error messages and CLI choices.
CORPUS_FORMATS: tuple[CorpusFormat, ...] = ("beir", "breathe", "cord19", "bioasq", "bioasq-golden", "pubmedqa")
#: Formats read line by line, whose batches are byte ranges.
LINE_FORMATS: tuple[CorpusFormat, ...] = ("beir", "breathe")
OnError = Literal["raise", "quarantine"]


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


#: Records larger than this (bytes of one JSONL line or CSV row) are rejected as oversized.
MAX_RECORD_BYTES = 4 * 1024 * 1024


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


def _str_field(obj: dict[str, Any], key: str, path: str, line: int | str, required: bool = False) -> str:
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


def _authors(val: Any, path: str, line: int | str) -> tuple[str, ...]:
    if val is None or val == "":
        return ()
    if isinstance(val, str):
        return tuple(a.strip() for a in val.split(";") if a.strip())
    if isinstance(val, list) and all(isinstance(a, str) for a in val):
        return tuple(a.strip() for a in val if a.strip())
    raise RecordError(path, line, "authors", "expected a list of strings or a ';'-separated string")


def _document(fields: dict[str, Any], path: str, line: int | str) -> Document:
    """Build and validate a Document from BREATHE-named fields."""
    doc = Document(
        id=_str_field(fields, "id", path, line, required=True),
        title=_str_field(fields, "title", path, line),
        abstract=_str_field(fields, "abstract", path, line),
        body=_str_field(fields, "body", path, line),
        source=_str_field(fields, "source", path, line),
        doi=_str_field(fields, "doi", path, line),
        pmid=_str_field(fields, "pmid", path, line),
        date=_str_field(fields, "date", path, line),
        journal=_str_field(fields, "journal", path, line),
        authors=_authors(fields.get("authors"), path, line),
        origin=SourceRef(path, line),
    )
    if not (doc.title or doc.abstract or doc.body):
        raise RecordError(path, line, "title/abstract/body", "empty record: no text to index")
    return doc


def _beir_fields(obj: dict[str, Any]) -> dict[str, Any]:
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


class _Bad(Exception):
    """Internal carrier of a RecordError plus the raw record, for quarantining."""

    def __init__(self, err: RecordError, raw: bytes | str | None) -> None:
        self.err, self.raw = err, raw


def _resilient_jsonl(path: Path, max_record_bytes: int, span: Span | None = None) -> Iterator[tuple[int, bytes, Any]]:
    """JSONL records; a bad line is yielded as a _Bad marker so iteration continues.

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
            except _Bad as bad:
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
        raise _Bad(
            RecordError(str(path), lineno, "(record)", f"oversized record: {len(raw)} bytes > {max_record_bytes}"),
            raw[:2000],
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Bad(
            RecordError(str(path), lineno, "(record)", f"not valid UTF-8 ({exc.reason} at byte {exc.start})"), raw
        ) from None
    if not text.strip():
        raise _Bad(RecordError(str(path), lineno, "(record)", "empty record (blank line)"), raw)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Bad(
            RecordError(str(path), lineno, "(record)", f"malformed JSON: {exc.msg} at column {exc.colno}"), raw
        ) from None
    if not isinstance(obj, dict):
        raise _Bad(
            RecordError(str(path), lineno, "(record)", f"expected a JSON object, got {type(obj).__name__}"), raw
        )
    yield lineno, raw, obj


def _route(
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
            if isinstance(obj, _Bad):
                raise obj.err
            yield build(obj, lineno)
        except RecordError as err:
            if on_error == "raise":
                raise
            assert sink is not None
            sink.reject(err, obj.raw if isinstance(obj, _Bad) else raw)


def _csv_rows(path: Path, max_record_bytes: int) -> Iterator[tuple[int, str, Any]]:
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
            yield lineno, raw, _Bad(RecordError(str(path), lineno, "(record)", "more columns than the header"), raw)
            continue
        bad = next((k for k, v in row.items() if v and _SURROGATE.search(v)), None)
        if bad is not None:
            yield (
                lineno,
                raw,
                _Bad(RecordError(str(path), lineno, bad, "not valid UTF-8"), raw.encode("utf-8", "replace")),
            )
            continue
        size = sum(len(v.encode()) for v in row.values() if v)
        if size > max_record_bytes:
            yield (
                lineno,
                raw,
                _Bad(
                    RecordError(str(path), lineno, "(record)", f"oversized record: {size} bytes > {max_record_bytes}"),
                    raw,
                ),
            )
            continue
        yield lineno, raw, row


_SURROGATE = re.compile("[\\udc80-\\udcff]")


def _cord19_fields(row: dict[str, Any]) -> dict[str, Any]:
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


def _records(it: Iterator[Any], span: Span | None) -> Iterator[Any]:
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


def _json_format(p: Path) -> CorpusFormat:
    from es_biomed.corpus.pubmedqa import looks_like_pubmedqa

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


def iter_documents(
    path: str | os.PathLike[str],
    fmt: CorpusFormat | None = None,
    *,
    on_error: OnError = "raise",
    sink: RejectSink | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
    span: Span | None = None,
) -> Iterator[Document]:
    """Yield the documents of a corpus file or directory, or of one slice of it.

    Args:
        path: A BEIR directory (reads ``corpus.jsonl``) or file, a BREATHE JSONL, a CORD-19 ``metadata.csv``,
            a BioASQ SQuAD JSON file (its deduplicated contexts), a BioASQ golden file (its snippets) or
            PubMedQA's ``ori_pqal.json`` (one document per PMID).
        fmt: Format; guessed by :func:`detect_format` when None.
        on_error: ``"raise"`` stops at the first bad record; ``"quarantine"`` sends it to ``sink``.
        sink: Dead-letter file, required with ``"quarantine"``.
        max_record_bytes: Size limit of one record.
        span: Read only this slice (see :class:`Span`): a byte range for ``beir``/``breathe`` JSONL, a record
            range for ``cord19`` rows and ``bioasq`` contexts. Errors keep the file's own line numbers.

    Raises:
        RecordError: a bad record, with ``on_error="raise"``. Records before it were already yielded.
    """
    p = Path(path)
    fmt = fmt or detect_format(p)
    if fmt == "beir":
        corpus = p / "corpus.jsonl" if p.is_dir() else p
        yield from _route(
            _resilient_jsonl(corpus, max_record_bytes, span),
            lambda o, n: _document(_beir_fields(o), str(corpus), n),
            on_error,
            sink,
        )
    elif fmt == "breathe":
        yield from _route(
            _resilient_jsonl(p, max_record_bytes, span), lambda o, n: _document(o, str(p), n), on_error, sink
        )
    elif fmt == "cord19":
        yield from _route(
            _records(_csv_rows(p, max_record_bytes), span),
            lambda o, n: _document(_cord19_fields(o), str(p), n),
            on_error,
            sink,
        )
    elif fmt in QUESTION_FORMATS:
        yield from _records(iter(load_questioned(p, fmt).corpus.values()), span)
    else:
        raise ValueError(f"unknown corpus format {fmt!r}; expected one of {', '.join(CORPUS_FORMATS)}")


def expand_paths(values: Iterable[str]) -> list[str]:
    """Corpus paths as given, with each glob pattern (a value with ``*``, ``?`` or ``[``) expanded and sorted, so
    a quoted pattern needs no shell.

    Raises:
        FileNotFoundError: a pattern matches no file, or a path does not exist (the message names it).
    """
    import glob

    out: list[str] = []
    for v in values:
        if any(c in v for c in "*?["):
            hits = sorted(glob.glob(v))
            if not hits:
                raise FileNotFoundError(f"{v!r} matches no file")
            out.extend(hits)
        elif not Path(v).exists():
            raise FileNotFoundError(f"file {v!r} does not exist")
        else:
            out.append(v)
    return out


def load_questioned(path: str | os.PathLike[str], fmt: CorpusFormat | None = None) -> RetrievalSet:
    """Read any supported corpus; the formats that carry questions (:data:`QUESTION_FORMATS`) also return them,
    as queries and qrels (BioASQ SQuAD with every pair kept, BioASQ golden snippets, PubMedQA)."""
    fmt = fmt or detect_format(path)
    if fmt == "bioasq":
        from es_biomed.corpus.bioasq import load_bioasq

        return load_bioasq([path], None)
    if fmt == "bioasq-golden":
        from es_biomed.corpus.bioasq import load_bioasq_golden

        return load_bioasq_golden([path])
    if fmt == "pubmedqa":
        from es_biomed.corpus.pubmedqa import load_pubmedqa

        return load_pubmedqa(path)
    return RetrievalSet(corpus={d.id: d for d in iter_documents(path, fmt)}, queries={}, qrels={})


def read_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    """BEIR ``queries.jsonl``: ``{_id: text}``. Bad lines raise RecordError."""
    out: dict[str, str] = {}
    for lineno, _raw, obj in _resilient_jsonl(Path(path), MAX_RECORD_BYTES):
        if isinstance(obj, _Bad):
            raise obj.err
        qid = _str_field(obj, "_id", str(path), lineno, required=True)
        out[qid] = _str_field(obj, "text", str(path), lineno, required=True)
    return out


def read_qrels(path: str | os.PathLike[str]) -> Qrels:
    """BEIR ``qrels/*.tsv`` (header ``query-id corpus-id score``): ``{qid: {doc_id: grade}}``."""
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").split("\t")
            if lineno == 1 and parts[0] == "query-id":
                continue
            if len(parts) != 3:
                raise RecordError(str(path), lineno, "(record)", f"expected 3 tab-separated columns, got {len(parts)}")
            try:
                grade = int(parts[2])
            except ValueError:
                raise RecordError(str(path), lineno, "score", f"not an integer: {parts[2]!r}") from None
            qrels.setdefault(parts[0], {})[parts[1]] = grade
    return qrels


def load_beir(directory: str | os.PathLike[str], split: str = "test") -> RetrievalSet:
    """Load a BEIR dataset: corpus, the queries judged in ``qrels/{split}.tsv``, and those qrels."""
    d = Path(directory)
    qrels_path = d / "qrels" / f"{split}.tsv"
    if not qrels_path.exists():
        raise FileNotFoundError(f"{qrels_path} not found: is {d} a BEIR directory with a {split!r} split?")
    qrels = read_qrels(qrels_path)
    queries = {q: t for q, t in read_queries(d / "queries.jsonl").items() if q in qrels}
    corpus = {doc.id: doc for doc in iter_documents(d, "beir")}
    return RetrievalSet(corpus=corpus, queries=queries, qrels=qrels)
