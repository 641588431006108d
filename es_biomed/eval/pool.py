"""Pooled corpora: distractor documents added to an evaluation set's corpus without becoming relevant.

The BioMedBERT paper's Table 9 reports BM25 MRR@10 of about 0.20, far below what a corpus of one split's own
contexts gives (0.83 to 0.98 here), which implies a much larger corpus. :func:`add_distractors` recreates that
regime: documents read from other corpora, in any supported format (:data:`~es_biomed.corpus.readers.CORPUS_FORMATS`),
join the corpus but never the qrels.

Rules:

* **Same id, same text:** the same document read twice (BioASQ ids are hashes of the text, so a snippet equal to
  a context has the context's id). It is kept once and counted in ``stats["duplicates"]``.
* **Same id, different text:** refused with :class:`~es_biomed.errors.RecordError` naming both files (and
  saying when the document is relevant): a silent overwrite would change what the judgements point at.
* **Documents of the same question:** a distractor file that carries questions (BioASQ SQuAD or golden files,
  PubMedQA) links documents to them. Where such a question is one of the evaluated queries (same id, or the same
  text lowercased with whitespace collapsed), its documents are unjudged answers to that query: they stay in the
  corpus (so one pooled index serves every split) but join ``ignore[qid]``, like pairs removed by the Jaccard rule:
  neither relevant nor an error. Their count is ``stats["same_question_ignored"]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from es_biomed.corpus.readers import load_questioned
from es_biomed.corpus.types import Document, RetrievalSet
from es_biomed.errors import RecordError

__all__ = ["load_questioned", "add_distractors", "document_origin"]


def document_origin(doc: Document, fallback: str = "the evaluation set") -> str:
    return f"{doc.origin.path}:{doc.origin.line}" if doc.origin is not None else fallback


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _same(a: Document, b: Document) -> bool:
    return (a.title, a.abstract, a.body) == (b.title, b.abstract, b.body)


def add_distractors(ds: RetrievalSet, paths: Sequence[str | os.PathLike[str]]) -> RetrievalSet:
    """``ds`` with the documents of ``paths`` added to its corpus, never to its qrels.

    Args:
        ds: The evaluation set; it is not modified.
        paths: Corpora in any supported format (guessed per file, see :func:`~es_biomed.corpus.readers.detect_format`).

    Returns:
        A new :class:`RetrievalSet`: the same queries and qrels, the pooled corpus, ``ignore`` extended with the
        documents of the same questions (module docstring), and ``stats["distractors"]`` holding ``files``
        (``{path: documents read}``), ``added``, ``duplicates``, ``same_question_ignored`` and ``corpus``
        (the pooled size).

    Raises:
        RecordError: a distractor shares an id with a different document (names both files), or a file is bad.
        FileNotFoundError: a path does not exist.
    """
    corpus = dict(ds.corpus)
    ignore = {q: set(v) for q, v in ds.ignore.items()}
    relevant = {d for docs in ds.qrels.values() for d in docs}
    by_text: dict[str, list[str]] = {}
    for qid, text in ds.queries.items():
        by_text.setdefault(_norm(text), []).append(qid)
    files: dict[str, int] = {}
    added = duplicates = ignored = 0
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"distractor corpus {str(path)!r} does not exist")
        extra = load_questioned(path)
        files[str(path)] = len(extra.corpus)
        for doc in extra.corpus.values():
            have = corpus.get(doc.id)
            if have is None:
                corpus[doc.id] = doc
                added += 1
            elif _same(have, doc):
                duplicates += 1
            else:
                kind = "relevant document" if doc.id in relevant else "document"
                raise RecordError(
                    doc.origin.path if doc.origin is not None else str(path),
                    doc.origin.line if doc.origin is not None else "(record)",
                    "id",
                    f"distractor id {doc.id!r} collides with {kind} {doc.id!r} of {document_origin(have)}, whose "
                    "text differs; give one corpus other ids",
                )
        for dq, docs in extra.qrels.items():
            targets = set(by_text.get(_norm(extra.queries.get(dq, "")), ())) | ({dq} & set(ds.queries))
            for qid in targets:
                for doc_id in docs:
                    if doc_id not in ds.qrels.get(qid, {}) and doc_id not in ignore.get(qid, set()):
                        ignore.setdefault(qid, set()).add(doc_id)
                        ignored += 1
    stats = dict(ds.stats)
    stats["distractors"] = {
        "files": files,
        "added": added,
        "duplicates": duplicates,
        "same_question_ignored": ignored,
        "corpus": len(corpus),
    }
    return RetrievalSet(corpus=corpus, queries=dict(ds.queries), qrels=ds.qrels, ignore=ignore, stats=stats)
