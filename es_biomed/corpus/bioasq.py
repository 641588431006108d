"""BioASQ (SQuAD format) as a retrieval task, following the BioMedBERT paper's protocol.

* Queries are the questions; a question's id is the SQuAD ``qas.id`` up to the first ``_`` (BioBERT's
  preprocessing repeats a question once per snippet as ``<id>_000``, ``<id>_001``...).
* Documents are the contexts, deduplicated by their whitespace-normalized text; a context's id is
  ``"ctx-" + sha1(normalized text)[:16]``, stable across runs and files.
* The corpus is every context of the files read. A question's relevant documents are its own contexts.
* Jaccard debiasing: tokens are ``re.findall(r"\\w+", text.lower())`` (Unicode word characters) taken
  as sets; ``J(q, c) = |Q & C| / |Q | C|``. A pair with ``J > threshold`` (default 0.30) is removed: it is
  neither relevant nor counted as an error (it is dropped from that question's run before scoring),
  and a question left with no pair is dropped.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Collection, Iterable, Mapping

from es_biomed.corpus.records import read_json_file
from es_biomed.corpus.types import Document, RetrievalSet, SourceRef
from es_biomed.errors import RecordError

__all__ = [
    "DEFAULT_JACCARD",
    "DEFAULT_DEV_FRACTION",
    "jaccard",
    "tokens",
    "context_id",
    "load_bioasq",
    "split_by_question",
    "load_bioasq_split",
    "load_bioasq_golden",
]

DEFAULT_JACCARD = 0.30
#: Share of questions :func:`split_by_question` puts in the dev split.
DEFAULT_DEV_FRACTION = 0.20
_WORD = re.compile(r"\w+")


def tokens(text: str) -> set[str]:
    """The Jaccard token set: lowercased ``\\w+`` runs."""
    return set(_WORD.findall(text.lower()))


def jaccard(a: str, b: str) -> float:
    """Jaccard overlap of the token sets of ``a`` and ``b`` (0.0 when both are empty).

    Example:
        >>> jaccard("What causes BRCA1 loss?", "BRCA1 loss causes cancer")
        0.6
    """
    ta, tb = tokens(a), tokens(b)
    union = ta | tb
    return len(ta & tb) / len(union) if union else 0.0


def context_id(text: str) -> str:
    return "ctx-" + hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


def load_bioasq(files: Iterable[str | os.PathLike[str]], threshold: float | None = DEFAULT_JACCARD) -> RetrievalSet:
    """Build a retrieval set from BioASQ SQuAD files.

    Args:
        files: SQuAD v1 JSON files (``data[].paragraphs[].{context, qas[].{id, question}}``).
        threshold: Jaccard threshold; pairs above it are removed. ``None`` keeps every pair.

    Returns:
        A :class:`RetrievalSet` whose ``stats`` holds ``pairs_total``, ``pairs_kept``, ``pairs_removed``,
        ``questions_total``, ``questions_kept`` and ``contexts``.

    Raises:
        RecordError: a file is not UTF-8 JSON in SQuAD layout; names the file and the JSON path.
    """
    corpus: dict[str, Document] = {}
    questions: dict[str, str] = {}
    pairs: set[tuple[str, str]] = set()
    for f in files:
        path = str(f)
        data = read_json_file(path)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise RecordError(path, "(file)", "data", "expected a SQuAD object with a 'data' list")
        for i, article in enumerate(data["data"]):
            for j, para in enumerate(article.get("paragraphs", [])):
                where = f"data[{i}].paragraphs[{j}]"
                ctx = para.get("context")
                if not isinstance(ctx, str) or not ctx.strip():
                    raise RecordError(path, where, "context", "missing or empty context")
                cid = context_id(ctx)
                corpus.setdefault(
                    cid,
                    Document(id=cid, abstract=" ".join(ctx.split()), source="bioasq", origin=SourceRef(path, where)),
                )
                for k, qa in enumerate(para.get("qas", [])):
                    qid_full, question = qa.get("id"), qa.get("question")
                    if not isinstance(qid_full, str) or not qid_full:
                        raise RecordError(path, f"{where}.qas[{k}]", "id", "missing question id")
                    if not isinstance(question, str) or not question.strip():
                        raise RecordError(path, f"{where}.qas[{k}]", "question", "missing or empty question")
                    qid = qid_full.split("_")[0]
                    questions.setdefault(qid, question.strip())
                    pairs.add((qid, cid))
    qrels: dict[str, dict[str, int]] = {}
    ignore: dict[str, set[str]] = {}
    removed = 0
    for qid, cid in sorted(pairs):
        if threshold is not None and jaccard(questions[qid], corpus[cid].abstract) > threshold:
            ignore.setdefault(qid, set()).add(cid)
            removed += 1
        else:
            qrels.setdefault(qid, {})[cid] = 1
    kept_q = {q: t for q, t in questions.items() if q in qrels}
    stats = {
        "pairs_total": len(pairs),
        "pairs_kept": len(pairs) - removed,
        "pairs_removed": removed,
        "questions_total": len(questions),
        "questions_kept": len(kept_q),
        "contexts": len(corpus),
        "jaccard_threshold": threshold,
    }
    return RetrievalSet(
        corpus=corpus,
        queries=kept_q,
        qrels=qrels,
        ignore={q: s for q, s in ignore.items() if q in kept_q},
        stats=stats,
    )


def split_by_question(
    questions: Mapping[str, str], dev_fraction: float = DEFAULT_DEV_FRACTION, salt: str = "es-biomed"
) -> tuple[list[str], list[str]]:
    """Split question ids into train and dev, deterministically and question-disjointly.

    A question goes to dev when ``int(sha1(salt + "\\n" + normalized text)[:8], 16) / 2**32 < dev_fraction``,
    the normalized text being the lowercased question with whitespace collapsed. Hashing the text rather than
    the id keeps a question asked twice under two ids (7b-train has one) on one side. The split depends on
    nothing but the question texts and ``salt``: no random state, stable across runs, machines and files.

    Args:
        questions: ``{qid: question text}`` (e.g. ``load_bioasq(files, None).queries``).
        dev_fraction: Expected share of dev questions, in ``[0, 1]``.
        salt: Changes the split; keep the default to reproduce published numbers.

    Returns:
        ``(train_ids, dev_ids)``, each sorted.

    Raises:
        ValueError: ``dev_fraction`` is outside ``[0, 1]``.

    Example:
        >>> split_by_question({"a": "What is BRCA1?", "b": "what is  brca1?", "c": "Which gene causes CF?"})
        (['a', 'b', 'c'], [])
    """
    if not 0.0 <= dev_fraction <= 1.0:
        raise ValueError(f"dev_fraction must be in [0, 1], got {dev_fraction!r}")
    train: list[str] = []
    dev: list[str] = []
    for qid, text in questions.items():
        norm = " ".join(text.lower().split())
        bucket = int(hashlib.sha1(f"{salt}\n{norm}".encode()).hexdigest()[:8], 16) / 2**32
        (dev if bucket < dev_fraction else train).append(qid)
    return sorted(train), sorted(dev)


def load_bioasq_split(
    files: Iterable[str | os.PathLike[str]],
    question_ids: Collection[str],
    threshold: float | None = DEFAULT_JACCARD,
) -> RetrievalSet:
    """The retrieval set of a subset of questions: the paper's protocol restricted to one split.

    The corpus is every context of the given questions (also those whose pairs the Jaccard rule removes), the
    queries are those questions, and the Jaccard rule applies as in :func:`load_bioasq`.

    Args:
        files: SQuAD v1 JSON files.
        question_ids: Question ids to keep (ids unknown to the files are ignored).
        threshold: Jaccard threshold; ``None`` keeps every pair.

    Returns:
        A :class:`RetrievalSet` whose ``stats`` are recounted over the subset (same keys as :func:`load_bioasq`).
    """
    files = list(files)
    keep = set(question_ids)
    every = load_bioasq(files, None)
    rules = load_bioasq(files, threshold) if threshold is not None else every
    pairs = {(q, c) for q in keep & set(every.qrels) for c in every.qrels[q]}
    corpus = {c: every.corpus[c] for c in sorted({c for _, c in pairs})}
    queries = {q: t for q, t in rules.queries.items() if q in keep}
    qrels = {q: dict(rules.qrels[q]) for q in queries}
    ignore = {q: set(rules.ignore[q]) for q in queries if q in rules.ignore}
    removed = len(pairs) - sum(len(v) for v in qrels.values())
    stats = {
        "pairs_total": len(pairs),
        "pairs_kept": len(pairs) - removed,
        "pairs_removed": removed,
        "questions_total": len(keep & set(every.queries)),
        "questions_kept": len(queries),
        "contexts": len(corpus),
        "jaccard_threshold": threshold,
    }
    return RetrievalSet(corpus=corpus, queries=queries, qrels=qrels, ignore=ignore, stats=stats)


def load_bioasq_golden(files: Iterable[str | os.PathLike[str]]) -> RetrievalSet:
    """The snippets of BioASQ golden files (``questions[].{id, body, snippets[].text}``, every question type).

    Each distinct snippet text is a document with the :func:`context_id` of its text, so a snippet equal to a
    SQuAD context gets that context's id. A question's relevant documents are its snippets; no Jaccard rule
    applies (these sets serve as distractor pools and corpora, see :mod:`es_biomed.eval.pool`).

    Raises:
        RecordError: a file is not UTF-8 JSON with a ``questions`` list, or a question lacks its id or body, or
            a snippet its text; names the file and the JSON path.
    """
    corpus: dict[str, Document] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for f in files:
        path = str(f)
        data = read_json_file(path)
        if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
            raise RecordError(path, "(file)", "questions", "expected a BioASQ golden object with a 'questions' list")
        for i, q in enumerate(data["questions"]):
            where = f"questions[{i}]"
            qid, body = q.get("id") if isinstance(q, dict) else None, q.get("body") if isinstance(q, dict) else None
            if not isinstance(qid, str) or not qid:
                raise RecordError(path, where, "id", "missing question id")
            if not isinstance(body, str) or not body.strip():
                raise RecordError(path, where, "body", "missing or empty question")
            queries.setdefault(qid, body.strip())
            for j, snip in enumerate(q.get("snippets") or []):
                text = snip.get("text") if isinstance(snip, dict) else None
                if not isinstance(text, str) or not text.strip():
                    raise RecordError(path, f"{where}.snippets[{j}]", "text", "missing or empty snippet text")
                cid = context_id(text)
                pmid = str(snip.get("document", "")).rstrip("/").rsplit("/", 1)[-1]
                corpus.setdefault(
                    cid,
                    Document(
                        id=cid,
                        abstract=" ".join(text.split()),
                        source="bioasq-golden",
                        pmid=pmid if pmid.isdigit() else "",
                        origin=SourceRef(path, f"{where}.snippets[{j}]"),
                    ),
                )
                qrels.setdefault(qid, {})[cid] = 1
    stats = {"questions_total": len(queries), "contexts": len(corpus)}
    return RetrievalSet(corpus=corpus, queries=queries, qrels=qrels, stats=stats)
