"""TREC run and qrels files (the formats trec_eval and ``pytrec_eval.parse_run`` / ``parse_qrel`` read).

* Run: ``qid Q0 docid rank score tag``, one line per retrieved document.
* Qrels: ``qid 0 docid grade``, one line per judgement.

Scores are written with ``repr(float(score))``, the shortest text that reads back to the same float, so a run
survives a round trip exactly.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from es_biomed.corpus.types import Qrels, Run
from es_biomed.errors import RecordError

__all__ = ["write_run", "read_run", "write_qrels"]

_RUN_COLUMNS = ("qid", "Q0", "docid", "rank", "score", "tag")


def _check_id(value: str, what: str, where: str) -> None:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ValueError(f"{what} {value!r}{where} must be a non-empty string without whitespace")


def _ranked(docs: dict[str, float]) -> list[tuple[str, float]]:
    # Same order as es_biomed.eval.metrics: score descending, ties in insertion order (sorted() is stable).
    return sorted(docs.items(), key=lambda t: -t[1])


def write_run(run: Run, path: str | os.PathLike[str], tag: str = "es-biomed", k: int | None = None) -> int:
    """Write a run as a TREC run file, ``qid Q0 docid rank score tag`` per line.

    Queries come in sorted qid order; within a query documents are ranked as :mod:`es_biomed.eval.metrics`
    ranks them (score descending, ties keeping the run's insertion order) and ``rank`` counts from 1.
    Tied scores are written unchanged. trec_eval itself ignores the ``rank`` column and breaks ties by doc id,
    so scoring the file with trec_eval may order tied documents differently; :func:`read_run` restores our order
    from the ``rank`` column. Queries with no documents write no line (and do not come back from :func:`read_run`).

    Args:
        run: ``{qid: {docid: score}}``.
        path: Output file; parent directories are created. An existing file is overwritten.
        tag: Run name written in the last column.
        k: Keep only the top ``k`` documents of each query (all when None).

    Returns:
        The number of lines written.

    Raises:
        ValueError: ``tag``, a qid or a docid is empty or contains whitespace, a score is NaN, or ``k < 1``.
    """
    _check_id(tag, "tag", "")
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1 or None, got {k}")
    lines = []
    for qid in sorted(run):
        _check_id(qid, "qid", "")
        for docid, score in run[qid].items():
            _check_id(docid, "docid", f" (query {qid!r})")
            if math.isnan(float(score)):
                raise ValueError(f"score of docid {docid!r} (query {qid!r}) is NaN")
        for rank, (docid, score) in enumerate(_ranked(run[qid])[:k], start=1):
            lines.append(f"{qid} Q0 {docid} {rank} {float(score)!r} {tag}\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
    return len(lines)


def read_run(path: str | os.PathLike[str]) -> Run:
    """Read a TREC run file (six whitespace-separated columns ``qid Q0 docid rank score tag``).

    Within a query, documents are inserted in ``rank`` order (lines of equal rank in file order), so a file
    written by :func:`write_run` reads back with the same ranking, tied scores included. Blank lines are skipped;
    the second and last columns are not checked.

    Args:
        path: The run file (UTF-8).

    Returns:
        ``{qid: {docid: score}}``.

    Raises:
        RecordError: A line without six columns, a rank that is not an integer, a score that is not a number
            (or NaN), or a (qid, docid) pair listed twice; the error names the file, line and column.
    """
    path = str(path)
    rows: dict[str, list[tuple[int, int, str, float]]] = {}
    seen: dict[tuple[str, str], int] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            cols = line.split()
            if not cols:
                continue
            if len(cols) != len(_RUN_COLUMNS):
                raise RecordError(
                    path, lineno, "(record)", f"expected 6 columns {' '.join(_RUN_COLUMNS)}, got {len(cols)}"
                )
            qid, _, docid, rank_s, score_s, _ = cols
            try:
                rank = int(rank_s)
            except ValueError:
                raise RecordError(path, lineno, "rank", f"not an integer: {rank_s!r}") from None
            try:
                score = float(score_s)
            except ValueError:
                raise RecordError(path, lineno, "score", f"not a number: {score_s!r}") from None
            if math.isnan(score):
                raise RecordError(path, lineno, "score", "score is NaN")
            first = seen.setdefault((qid, docid), lineno)
            if first != lineno:
                raise RecordError(
                    path, lineno, "docid", f"docid {docid!r} of query {qid!r} already listed at line {first}"
                )
            rows.setdefault(qid, []).append((rank, lineno, docid, score))
    return {qid: {docid: score for _, _, docid, score in sorted(docs)} for qid, docs in rows.items()}


def write_qrels(qrels: Qrels, path: str | os.PathLike[str]) -> int:
    """Write relevance judgements as a trec_eval qrels file, ``qid 0 docid grade`` per line.

    Lines are sorted by qid, then docid.

    Args:
        qrels: ``{qid: {docid: grade}}``.
        path: Output file; parent directories are created. An existing file is overwritten.

    Returns:
        The number of lines written.

    Raises:
        ValueError: A qid or docid is empty or contains whitespace, or a grade is not an integer.
    """
    lines = []
    for qid in sorted(qrels):
        _check_id(qid, "qid", "")
        for docid in sorted(qrels[qid]):
            _check_id(docid, "docid", f" (query {qid!r})")
            grade = qrels[qid][docid]
            try:
                ok = int(grade) == grade
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"grade of docid {docid!r} (query {qid!r}) must be an integer, got {grade!r}")
            lines.append(f"{qid} 0 {docid} {int(grade)}\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
    return len(lines)
