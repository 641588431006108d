"""Hard negatives: BM25 (the project's embedded engine) and dense (the current encoder), with a false-negative
filter.

BM25 negatives follow DPR (Karpukhin et al. 2020): the best-ranked BM25 hits that are not relevant. Dense
negatives are the nearest documents by cosine under the current encoder. Both are filtered for false negatives
the way NV-Retriever's "TopK-PercPos" does (Moreira et al. 2024): a candidate whose cosine to the question is
above ``max_ratio`` times the positive's cosine is dropped, since an unjudged document that the encoder finds as
close as the positive is more often relevant than not.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from es_biomed.corpus.types import Document, RetrievalSet
from es_biomed.query.plan import Filters, SearchPlan

__all__ = ["merge_sets", "build_bm25_index", "mine_hard_negatives", "dense_candidates", "filter_false_negatives"]

_BM25_ONLY = {"name": "bm25-only", "dims": 1, "max_length": 0, "pooling": "none", "fingerprint": "bm25-only"}


def merge_sets(sets: Mapping[str, RetrievalSet]) -> RetrievalSet:
    """Merge retrieval sets into one, prefixing every query and document id with ``"<name>:"``.

    Each document's ``source`` becomes ``name``, so mining can keep a question's negatives within its own data set.
    """
    corpus: dict[str, Document] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for name, ds in sets.items():
        for doc_id, doc in ds.corpus.items():
            corpus[f"{name}:{doc_id}"] = dataclasses.replace(doc, id=f"{name}:{doc_id}", source=name)
        for qid, text in ds.queries.items():
            queries[f"{name}:{qid}"] = text
        for qid, rels in ds.qrels.items():
            if qid in ds.queries:
                qrels[f"{name}:{qid}"] = {f"{name}:{d}": g for d, g in rels.items()}
    return RetrievalSet(corpus=corpus, queries=queries, qrels=qrels, stats={"sets": list(sets)})


def build_bm25_index(docs: Iterable[Document], path: str | os.PathLike[str]) -> Any:
    """A BM25-only :class:`~es_biomed.backends.embedded.index.EmbeddedIndex` (documents without vectors) for mining.

    Args:
        docs: The training corpus.
        path: Index directory; must not hold an index built for something else.

    Returns:
        The opened index.
    """
    from es_biomed.backends.embedded.index import EmbeddedIndex

    index = EmbeddedIndex.create(path, dict(_BM25_ONLY))
    empty = np.zeros((0, 1), dtype=np.float32)
    with index.writer() as writer:
        fresh = writer.pending(list(docs))
        writer.upsert(fresh, [empty] * len(fresh))
    return EmbeddedIndex(path)


def mine_hard_negatives(
    index: Any,
    queries: Mapping[str, str],
    positives: Mapping[str, Collection[str]],
    plan: SearchPlan,
    n: int = 1,
    depth: int = 30,
    skip: int = 0,
    sources: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """BM25 hard negatives: the best-ranked documents that are not relevant to the question.

    Args:
        index: An :class:`~es_biomed.backends.embedded.index.EmbeddedIndex` (see :func:`build_bm25_index`).
        queries: ``{qid: text}``.
        positives: ``{qid: relevant doc ids}``; these are never returned for that question.
        plan: Field boosts and match type of the BM25 query; it runs in ``bm25`` mode with ``k = depth``.
        n: Negatives per question.
        depth: BM25 hits looked at.
        skip: Non-relevant hits passed over before taking ``n`` (0: the top ones).
        sources: Optional ``{qid: source}`` restricting a question's negatives to documents of that source.

    Returns:
        ``{qid: [doc_id, ...]}`` best BM25 rank first, at most ``n`` each (fewer when BM25 finds fewer).
    """
    out: dict[str, list[str]] = {}
    for qid, text in queries.items():
        p = plan.replace(query=text, mode="bm25", k=depth)
        if sources and qid in sources:
            p = p.replace(filters=Filters(sources=(sources[qid],)))
        pos = set(positives.get(qid, ()))
        cands = [h.doc_id for h in index.bm25(p, depth) if h.doc_id not in pos]
        out[qid] = cands[skip : skip + n]
    return out


def dense_candidates(
    query_vecs: np.ndarray,
    doc_vecs: np.ndarray,
    doc_ids: Sequence[str],
    exclude: Sequence[Collection[str]],
    depth: int = 30,
) -> list[list[tuple[str, float]]]:
    """The ``depth`` nearest documents by cosine for every query, best first, skipping each row's ``exclude``.

    Args:
        query_vecs: ``[Q, d]`` L2-normalized query embeddings.
        doc_vecs: ``[D, d]`` L2-normalized document embeddings (``doc_ids`` in the same order).
        exclude: Per query, the document ids never returned (its positives).

    Returns:
        Per query, ``[(doc_id, cosine), ...]`` (ties broken by document order).
    """
    out: list[list[tuple[str, float]]] = []
    if len(doc_ids) == 0:
        return [[] for _ in range(len(query_vecs))]
    for start in range(0, len(query_vecs), 256):
        sims = query_vecs[start : start + 256] @ doc_vecs.T
        want = min(depth + 8, sims.shape[1])
        for row, i in zip(sims, range(start, start + len(sims)), strict=True):
            top = np.argpartition(-row, want - 1)[:want] if want < len(row) else np.arange(len(row))
            top = top[np.lexsort((top, -row[top]))]
            skip = exclude[i]
            picked = [(doc_ids[j], float(row[j])) for j in top if doc_ids[j] not in skip]
            if len(picked) < depth and want < len(row):  # many excluded: fall back to a full sort
                order = np.lexsort((np.arange(len(row)), -row))
                picked = [(doc_ids[j], float(row[j])) for j in order if doc_ids[j] not in skip]
            out.append(picked[:depth])
    return out


def filter_false_negatives(
    candidates: Iterable[tuple[str, float]], positive_score: float, max_ratio: float = 0.95
) -> tuple[list[str], int]:
    """Drop candidates scoring above ``max_ratio * positive_score`` (cosines; TopK-PercPos).

    Returns:
        ``(kept ids in order, number dropped)``.
    """
    kept: list[str] = []
    dropped = 0
    for doc_id, score in candidates:
        if score > max_ratio * positive_score:
            dropped += 1
        else:
            kept.append(doc_id)
    return kept, dropped
