"""Corpus readers: BEIR, BREATHE-style JSONL, CORD-19 ``metadata.csv``, BioASQ and PubMedQA, as documents.

Every reader yields :class:`~es_biomed.corpus.types.Document` and validates each record
(:mod:`es_biomed.corpus.records`); the format is guessed by :func:`~es_biomed.corpus.formats.detect_format`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from es_biomed.corpus.bioasq import load_bioasq, load_bioasq_golden
from es_biomed.corpus.formats import CORPUS_FORMATS, QUESTION_FORMATS, CorpusFormat, detect_format
from es_biomed.corpus.pubmedqa import load_pubmedqa
from es_biomed.corpus.records import (
    MAX_RECORD_BYTES,
    BadRecord,
    OnError,
    RejectSink,
    Span,
    beir_fields,
    cord19_fields,
    csv_records,
    document_from_fields,
    jsonl_records,
    route_records,
    slice_records,
    str_field,
)
from es_biomed.corpus.types import Document, Qrels, RetrievalSet
from es_biomed.errors import RecordError

__all__ = ["expand_paths", "iter_documents", "load_beir", "load_questioned", "read_qrels", "read_queries"]


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
        yield from route_records(
            jsonl_records(corpus, max_record_bytes, span),
            lambda o, n: document_from_fields(beir_fields(o), str(corpus), n),
            on_error,
            sink,
        )
    elif fmt == "breathe":
        yield from route_records(
            jsonl_records(p, max_record_bytes, span), lambda o, n: document_from_fields(o, str(p), n), on_error, sink
        )
    elif fmt == "cord19":
        yield from route_records(
            slice_records(csv_records(p, max_record_bytes), span),
            lambda o, n: document_from_fields(cord19_fields(o), str(p), n),
            on_error,
            sink,
        )
    elif fmt in QUESTION_FORMATS:
        yield from slice_records(iter(load_questioned(p, fmt).corpus.values()), span)
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
        return load_bioasq([path], None)
    if fmt == "bioasq-golden":
        return load_bioasq_golden([path])
    if fmt == "pubmedqa":
        return load_pubmedqa(path)
    return RetrievalSet(corpus={d.id: d for d in iter_documents(path, fmt)}, queries={}, qrels={})


def read_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    """BEIR ``queries.jsonl``: ``{_id: text}``. Bad lines raise RecordError."""
    out: dict[str, str] = {}
    for lineno, _raw, obj in jsonl_records(Path(path), MAX_RECORD_BYTES):
        if isinstance(obj, BadRecord):
            raise obj.err
        qid = str_field(obj, "_id", str(path), lineno, required=True)
        out[qid] = str_field(obj, "text", str(path), lineno, required=True)
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
