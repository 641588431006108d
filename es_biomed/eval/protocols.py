"""Evaluation protocols: BEIR (NDCG@10, Recall@100, MRR@10 for four search modes, plus the cross-encoder stage
when one is given) and the BioMedBERT paper's BioASQ Table 9 (MRR@5 / MRR@10 of BM25 and BM25 + rerank for rerank
windows 20, 30, 40, 50)."""

from __future__ import annotations

import os
import platform
import random
from collections.abc import Collection, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.backends.embedded import EmbeddedIndex
from es_biomed.corpus.bioasq import DEFAULT_JACCARD, load_bioasq, load_bioasq_split
from es_biomed.corpus.readers import load_beir
from es_biomed.corpus.types import RetrievalSet, Run
from es_biomed.encode.base import Encoder
from es_biomed.errors import PlanError
from es_biomed.eval.metrics import evaluate
from es_biomed.ingest.local import index_documents
from es_biomed.query.cross_stage import search_with_cross_encoder
from es_biomed.query.plan import SearchPlan

__all__ = [
    "SEED",
    "BEIR_RUNS",
    "CE_RUN",
    "evaluate_beir",
    "evaluate_bioasq",
    "evaluate_bioasq_questions",
    "run_modes",
    "ensure_index",
]

SEED = 42
#: Output name -> SearchPlan mode.
BEIR_RUNS = {"bm25": "bm25", "bm25+rerank": "rerank", "dense": "dense", "hybrid": "hybrid"}
#: The run of the ``rerank_ce`` mode (BM25, cosine rescore, cross-encoder): evaluated only when asked for.
CE_RUN = "bm25+rerank+ce"


def _seed() -> None:
    random.seed(SEED)
    np.random.seed(SEED)


def ensure_index(ds: RetrievalSet, target: Any, encoder: Encoder, show_progress: bool) -> Any:
    """Index ``ds.corpus`` into ``target`` and return a searchable backend.

    ``target`` is an embedded index path (idempotent: unchanged documents are skipped) or a backend object
    with ``index_documents(docs, encoder)``, ``search(plan, vector)`` and ``count()`` (the Elasticsearch one).
    """
    if isinstance(target, (str, os.PathLike)):
        index_documents(ds.corpus.values(), target, encoder, show_progress=show_progress)
        return EmbeddedIndex(target)
    target.index_documents(ds.corpus.values(), encoder)
    return target


def run_modes(
    index: Any,
    ds: RetrievalSet,
    encoder: Encoder,
    plans: dict[str, SearchPlan],
    show_progress: bool = False,
    cross_encoder: Any = None,
) -> dict[str, Run]:
    """One run per named plan; queries are encoded once.

    Args:
        cross_encoder: The scorer of ``rerank_ce`` plans on an embedded index
            (:class:`~es_biomed.encode.cross_encoder.CrossEncoderScorer`); a cluster runs its own inference endpoint.
    """
    qids = list(ds.queries)
    texts = [ds.queries[q] for q in qids]
    vecs = encoder.encode_queries(texts, batch_size=64, show_progress=show_progress)
    runs: dict[str, Run] = {}
    for name, plan in plans.items():
        run: Run = {}
        local_ce = plan.mode == "rerank_ce" and isinstance(index, EmbeddedIndex)
        for i, qid in enumerate(qids):
            p = plan.replace(query=texts[i])
            res = search_with_cross_encoder(index, p, vecs[i], cross_encoder) if local_ce else index.search(p, vecs[i])
            run[qid] = {h.doc_id: h.score for h in res.hits}
        runs[name] = run
    return runs


def _config(encoder: Encoder, plan: SearchPlan, ce: bool = False, **extra: Any) -> dict[str, Any]:
    import tantivy

    from es_biomed import __version__

    p = asdict(plan)
    p.pop("query")
    p.pop("mode")
    if not ce:  # the cross-encoder settings appear only where a cross-encoder run was made
        for key in ("ce_window", "ce_weight", "cross_encoder"):
            p.pop(key)
    return {
        **extra,
        "encoder": encoder.info.to_dict(),
        "plan": p,
        "seed": SEED,
        "versions": {"es_biomed": __version__, "tantivy": tantivy.__version__, "python": platform.python_version()},
    }


def evaluate_beir(
    directory: str | os.PathLike[str],
    index_path: Any,
    encoder: Encoder,
    plan: SearchPlan,
    split: str = "test",
    k: int = 100,
    metrics: Sequence[str] = ("NDCG@10", "Recall@100", "MRR@10"),
    show_progress: bool = False,
    modes: Sequence[str] | None = None,
    cross_encoder: Any = None,
) -> dict[str, Any]:
    """Evaluate the four search modes on a BEIR dataset; the corpus is indexed into ``index_path`` first
    (an embedded index path, or a cluster backend object).

    Args:
        modes: Run names of :data:`BEIR_RUNS`, or :data:`CE_RUN`, to evaluate (default: all four, and
            :data:`CE_RUN` when ``cross_encoder`` is given).
        cross_encoder: For :data:`CE_RUN` (the ``rerank_ce`` mode, with ``plan``'s ``ce_window`` / ``ce_weight``):
            a cross-encoder name or directory, or a loaded scorer. On an embedded index it is loaded here; a
            cluster gets only its name (the inference endpoint's).

    Raises:
        PlanError: :data:`CE_RUN` is asked for without a cross-encoder (names ``cross_encoder``).

    Returns:
        ``{"runs": {"bm25": {"NDCG@10": ...}, "bm25+rerank": ..., "dense": ..., "hybrid": ...}, "config": ...}``
        (plus ``"bm25+rerank+ce"`` when evaluated; ``config.plan`` then holds the cross-encoder settings).
    """
    _seed()
    wanted = {**BEIR_RUNS, CE_RUN: "rerank_ce"} if cross_encoder is not None or modes else dict(BEIR_RUNS)
    if modes is not None:
        wanted = {name: mode for name, mode in wanted.items() if name in modes}
    ce = CE_RUN in wanted
    if ce and cross_encoder is None:
        raise PlanError(f"cross_encoder: the {CE_RUN} run (mode rerank_ce) needs a cross-encoder model")
    ds = load_beir(directory, split)
    index = ensure_index(ds, index_path, encoder, show_progress)
    scorer = None
    if ce:
        if isinstance(index, EmbeddedIndex):
            if isinstance(cross_encoder, (str, os.PathLike)):
                from es_biomed.encode.cross_encoder import load_cross_encoder

                scorer = load_cross_encoder(cross_encoder)
            else:
                scorer = cross_encoder
        ce_name = str(cross_encoder) if isinstance(cross_encoder, (str, os.PathLike)) else cross_encoder.name
        plan = plan.replace(cross_encoder=scorer.name if scorer is not None else ce_name)
    depth = max(k, plan.k)
    # hybrid's RRF returns at most rank_window_size (= window_size) hits: widen it to the run depth
    plans = {
        name: plan.replace(
            mode=mode, k=depth, window_size=max(plan.window_size, depth) if mode == "hybrid" else plan.window_size
        )
        for name, mode in wanted.items()
    }
    runs = run_modes(index, ds, encoder, plans, show_progress, cross_encoder=scorer)
    return {
        "runs": {name: evaluate(ds.qrels, run, metrics) for name, run in runs.items()},
        "config": _config(
            encoder,
            plan,
            ce=ce,
            dataset=str(directory),
            split=split,
            k=k,
            queries=len(ds.queries),
            documents=index.count(),
        ),
    }


def _table9(
    ds: RetrievalSet,
    index_path: Any,
    encoder: Encoder,
    plan: SearchPlan,
    windows: Sequence[int],
    show_progress: bool,
    **config: Any,
) -> dict[str, Any]:
    """Index ``ds``'s contexts, run BM25 and the rerank at every window, and score MRR@5 / MRR@10."""
    index = ensure_index(ds, index_path, encoder, show_progress)
    depth = max(max(windows), 10 + max((len(v) for v in ds.ignore.values()), default=0))
    plans = {"bm25": plan.replace(mode="bm25", k=depth)}
    for w in windows:
        plans[f"rerank@{w}"] = plan.replace(mode="rerank", window_size=w, k=max(w, 10))
    runs = run_modes(index, ds, encoder, plans, show_progress)
    mrr = ("MRR@5", "MRR@10")
    bm25 = evaluate(ds.qrels, runs["bm25"], mrr, ds.ignore)
    table = {
        "bm25": {str(w): dict(bm25) for w in windows},
        "bm25+rerank": {str(w): evaluate(ds.qrels, runs[f"rerank@{w}"], mrr, ds.ignore) for w in windows},
    }
    return {
        "table": table,
        "pairs_kept": ds.stats["pairs_kept"],
        "pairs_removed": ds.stats["pairs_removed"],
        "config": _config(
            encoder,
            plan,
            **config,
            windows=list(windows),
            stats=ds.stats,
            documents=index.count(),
            queries=len(ds.queries),
        ),
    }


def evaluate_bioasq(
    files: Sequence[str | os.PathLike[str]],
    index_path: Any,
    encoder: Encoder,
    plan: SearchPlan,
    windows: Sequence[int] = (20, 30, 40, 50),
    threshold: float | None = DEFAULT_JACCARD,
    show_progress: bool = False,
) -> dict[str, Any]:
    """The BioMedBERT paper's Table 9 protocol on BioASQ SQuAD files.

    The contexts of ``files`` are indexed into ``index_path``; questions are queries; pairs with Jaccard
    overlap above ``threshold`` are removed (see :mod:`es_biomed.corpus.bioasq`). BM25's ranking does not
    depend on the window; the rerank's does.

    Returns:
        ``{"table": {"bm25": {"20": {"MRR@5": ..., "MRR@10": ...}, ...}, "bm25+rerank": {...}},
        "pairs_kept": N, "pairs_removed": M, "config": {...}}``
    """
    _seed()
    ds = load_bioasq(files, threshold)
    return _table9(ds, index_path, encoder, plan, windows, show_progress, files=[str(Path(f)) for f in files])


def evaluate_bioasq_questions(
    files: Sequence[str | os.PathLike[str]],
    question_ids: Collection[str],
    index_path: Any,
    encoder: Encoder,
    plan: SearchPlan,
    windows: Sequence[int] = (20, 30, 40, 50),
    threshold: float | None = DEFAULT_JACCARD,
    show_progress: bool = False,
) -> dict[str, Any]:
    """:func:`evaluate_bioasq` restricted to a subset of questions (a held-out split).

    The corpus is the contexts of ``question_ids`` only, the queries are those questions, and the Jaccard rule
    applies as in the paper (see :func:`es_biomed.corpus.bioasq.load_bioasq_split`). Use it with the dev ids
    of :func:`es_biomed.corpus.bioasq.split_by_question` to evaluate a model trained on the other questions.

    Returns:
        The same layout as :func:`evaluate_bioasq`; ``config`` also holds ``question_ids`` (their count) and
        ``question_ids_sha256`` (sha256 of the sorted ids joined by newlines).
    """
    import hashlib

    _seed()
    ds = load_bioasq_split(files, question_ids, threshold)
    ids = sorted(set(question_ids))
    return _table9(
        ds,
        index_path,
        encoder,
        plan,
        windows,
        show_progress,
        files=[str(Path(f)) for f in files],
        question_ids=len(ids),
        question_ids_sha256=hashlib.sha256("\n".join(ids).encode()).hexdigest(),
    )
