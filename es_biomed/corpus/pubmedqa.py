"""PubMedQA (``ori_pqal.json``, PQA-L) as a corpus: one document per PMID, its CONTEXTS joined.

The file maps a PMID to ``{"QUESTION", "CONTEXTS", "LABELS", ...}``; the document id is the PMID, the
abstract is the CONTEXTS list joined by spaces (their section labels dropped), and the question is kept so
that a pool can tell which documents answer a given question.
"""

from __future__ import annotations

import ast
import os
from typing import Any

from es_biomed.corpus.records import read_json_file
from es_biomed.corpus.types import Document, RetrievalSet, SourceRef
from es_biomed.errors import RecordError

__all__ = ["load_pubmedqa", "looks_like_pubmedqa"]


def looks_like_pubmedqa(data: Any) -> bool:
    """Whether a parsed JSON value has PubMedQA's layout (a dict of dicts with CONTEXTS)."""
    if not isinstance(data, dict) or not data:
        return False
    first = next(iter(data.values()))
    return isinstance(first, dict) and "CONTEXTS" in first


def _contexts(value: Any, path: str, where: str) -> list[str]:
    if isinstance(value, str):  # some exports store the list as its Python repr
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise RecordError(path, where, "CONTEXTS", "expected a list of strings") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(path, where, "CONTEXTS", "expected a list of strings")
    return [" ".join(v.split()) for v in value if v.strip()]


def load_pubmedqa(path: str | os.PathLike[str]) -> RetrievalSet:
    """Read ``ori_pqal.json``: corpus = one document per PMID, queries = the questions, qrels = question → PMID.

    Raises:
        RecordError: not UTF-8 JSON in PubMedQA's layout, or an entry with an empty QUESTION or CONTEXTS;
            names the file and the PMID.
    """
    p = str(path)
    data = read_json_file(p)
    if not looks_like_pubmedqa(data):
        raise RecordError(p, "(file)", "(record)", "expected PubMedQA's {PMID: {QUESTION, CONTEXTS, ...}} layout")
    corpus: dict[str, Document] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for pmid, row in data.items():
        if not isinstance(row, dict):
            raise RecordError(p, pmid, "(record)", "expected an object")
        text = " ".join(_contexts(row.get("CONTEXTS"), p, pmid))
        question = row.get("QUESTION")
        if not text:
            raise RecordError(p, pmid, "CONTEXTS", "empty CONTEXTS")
        if not isinstance(question, str) or not question.strip():
            raise RecordError(p, pmid, "QUESTION", "missing or empty question")
        year = str(row.get("YEAR") or "")
        corpus[pmid] = Document(
            id=pmid, abstract=text, pmid=pmid, date=year, source="pubmedqa", origin=SourceRef(p, pmid)
        )
        queries[f"q{pmid}"] = question.strip()
        qrels[f"q{pmid}"] = {pmid: 1}
    return RetrievalSet(corpus=corpus, queries=queries, qrels=qrels, stats={"contexts": len(corpus)})
