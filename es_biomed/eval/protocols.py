"""Evaluation protocols: BEIR (NDCG@10, Recall@100, MRR@10 for four search modes, plus the cross-encoder stage
when one is given) and the BioMedBERT paper's BioASQ Table 9 (MRR@5 / MRR@10 of BM25, BM25 + cosine and BM25 +
rerank for windows 20, 30, 40, 50; see :mod:`es_biomed.eval.table9`).

Both protocols can pool distractor corpora into the retrieval corpus (:mod:`es_biomed.eval.pool`), test every run
against BM25 over queries (:mod:`es_biomed.eval.significance`), write every run as a TREC run file
(:mod:`es_biomed.eval.trec`), and count judged documents missing from the corpus (:func:`check_qrels`)."""

from __future__ import annotations

import logging
import os
import platform
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.corpus.bioasq import DEFAULT_JACCARD, load_bioasq, load_bioasq_split
from es_biomed.corpus.readers import load_beir
from es_biomed.corpus.types import RetrievalSet, Run
from es_biomed.encode.base import Encoder
from es_biomed.errors import PlanError
from es_biomed.eval.metrics import average, per_query
from es_biomed.eval.pool import add_distractors
from es_biomed.eval.table9 import TABLE9_METRICS, score_table9, table9_plans
from es_biomed.ingest.local import index_documents
from es_biomed.query.plan import SearchPlan
from es_biomed.search import Searcher

__all__ = [
    "SEED",
    "Evaluation",
    "check_qrels",
    "write_runs",
    "table9_evaluation",
    "BEIR_RUNS",
    "CE_RUN",
    "evaluate_beir",
    "beir_evaluation",
    "evaluate_bioasq",
    "evaluate_bioasq_questions",
    "run_modes",
    "ensure_index",
]

logger = logging.getLogger(__name__)

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
    """One run per named plan, through the :class:`~es_biomed.search.Searcher`; queries are encoded once (with
    ``encoder``, the one that built the index).

    Args:
        cross_encoder: The scorer of ``rerank_ce`` plans on an embedded index
            (:class:`~es_biomed.encode.cross_encoder.CrossEncoderScorer`); a cluster runs its own inference endpoint.
    """
    searcher = Searcher(index, encoder, cross_encoder=cross_encoder)
    return searcher.run_plans(ds.queries, plans, show_progress=show_progress)


def _config(encoder: Encoder, plan: SearchPlan, ce: bool = False, **extra: Any) -> dict[str, Any]:
    import tantivy

    from es_biomed.version import __version__

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


@dataclass
class Evaluation:
    """What a protocol produced: the JSON-ready ``result``, the ``runs`` it scored and the set they answer."""

    result: dict[str, Any]
    runs: dict[str, Run]
    ds: RetrievalSet


def check_qrels(ds: RetrievalSet, name: str = "qrels", examples: int = 5) -> dict[str, Any]:
    """Count judged (query, document) pairs whose document is not in the corpus, and warn naming a few.

    Such a pair can never be retrieved, so it silently caps every metric; the count goes into the result
    (``config.qrels_missing``) and a warning is logged whenever it is not zero.

    Returns:
        ``{"pairs": n, "documents": distinct ids, "examples": up to ``examples`` sorted ids}``.
    """
    missing = sorted({d for docs in ds.qrels.values() for d in docs if d not in ds.corpus})
    pairs = sum(1 for docs in ds.qrels.values() for d in docs if d not in ds.corpus)
    if missing:
        logger.warning(
            "%s: %d judged pairs (%d documents) point at documents absent from the corpus, e.g. %s",
            name,
            pairs,
            len(missing),
            ", ".join(missing[:examples]),
        )
    return {"pairs": pairs, "documents": len(missing), "examples": missing[:examples]}


def write_runs(runs: Mapping[str, Run], directory: str | os.PathLike[str], prefix: str = "") -> dict[str, str]:
    """Write each run as a TREC run file ``DIR/{prefix}{name}.trec`` (tag = the run name); returns name -> path."""
    from es_biomed.eval.trec import write_run

    out = {}
    for name, run in runs.items():
        path = Path(directory) / f"{prefix}{name}.trec"
        write_run(run, path, tag=name.replace("@", "-at-"))
        out[name] = str(path)
    return out


def evaluate_beir(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Evaluate the four search modes on a BEIR dataset; the corpus is indexed into ``index_path`` first
    (an embedded index path, or a cluster backend object). Takes :func:`beir_evaluation`'s arguments and returns
    its ``result``."""
    return beir_evaluation(*args, **kwargs).result


def beir_evaluation(
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
    distractors: Sequence[str | os.PathLike[str]] = (),
    run_output: str | os.PathLike[str] | None = None,
    significance: str | None = "randomization",
    n_resamples: int = 10_000,
) -> Evaluation:
    """:func:`evaluate_beir`, also returning the runs and the (pooled) set.

    Args:
        modes: Run names of :data:`BEIR_RUNS`, or :data:`CE_RUN`, to evaluate (default: all four, and
            :data:`CE_RUN` when ``cross_encoder`` is given).
        cross_encoder: For :data:`CE_RUN` (the ``rerank_ce`` mode, with ``plan``'s ``ce_window`` / ``ce_weight``):
            a cross-encoder name or directory, or a loaded scorer. On an embedded index it is loaded here; a
            cluster gets only its name (the inference endpoint's).
        distractors: Corpora whose documents join the corpus, never the qrels (:func:`~es_biomed.eval.pool.add_distractors`).
        run_output: Directory for one TREC run file per run (:func:`write_runs`).
        significance: Paired test of every run against ``bm25`` over queries (``"randomization"`` or
            ``"t-test"``), or None; needs the ``bm25`` run.

    Raises:
        PlanError: :data:`CE_RUN` is asked for without a cross-encoder (names ``cross_encoder``).
        RecordError: a distractor id collides with a different document (names both files).

    Returns:
        ``result = {"runs": {"bm25": {"NDCG@10": ...}, "bm25+rerank": ..., "dense": ..., "hybrid": ...},
        "significance": {run: {metric: test}}, "config": ...}`` (plus ``"bm25+rerank+ce"`` when evaluated;
        ``config.plan`` then holds the cross-encoder settings; ``config.qrels_missing`` counts judged documents
        absent from the corpus).
    """
    _seed()
    wanted = {**BEIR_RUNS, CE_RUN: "rerank_ce"} if cross_encoder is not None or modes else dict(BEIR_RUNS)
    if modes is not None:
        wanted = {name: mode for name, mode in wanted.items() if name in modes}
    ce = CE_RUN in wanted
    if ce and cross_encoder is None:
        raise PlanError(f"cross_encoder: the {CE_RUN} run (mode rerank_ce) needs a cross-encoder model")
    ds = load_beir(directory, split)
    if distractors:
        ds = add_distractors(ds, distractors)
    missing = check_qrels(ds, f"{directory} ({split})")
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
    pq = {name: per_query(ds.qrels, run, metrics, ds.ignore) for name, run in runs.items()}
    result: dict[str, Any] = {
        "runs": {name: average(vals, metrics) for name, vals in pq.items()},
    }
    if significance and "bm25" in pq and len(pq) > 1:
        from es_biomed.eval.significance import compare_to_baseline

        result["significance"] = compare_to_baseline(pq, "bm25", metrics, method=significance, n_resamples=n_resamples)
    config = _config(
        encoder,
        plan,
        ce=ce,
        dataset=str(directory),
        split=split,
        k=k,
        queries=len(ds.queries),
        documents=index.count(),
        qrels_missing=missing,
    )
    return _finish(result, config, runs, ds, run_output)


def _finish(
    result: dict[str, Any],
    config: dict[str, Any],
    runs: dict[str, Run],
    ds: RetrievalSet,
    run_output: str | os.PathLike[str] | None,
) -> Evaluation:
    """Add the pool's counts and the run files to ``config``, and put it in ``result``."""
    if "distractors" in ds.stats:
        config["distractors"] = ds.stats["distractors"]
    if run_output is not None:
        config["run_files"] = write_runs(runs, run_output)
    result["config"] = config
    return Evaluation(result, runs, ds)


def table9_evaluation(
    ds: RetrievalSet,
    index_path: Any,
    encoder: Encoder,
    plan: SearchPlan,
    windows: Sequence[int] = (20, 30, 40, 50),
    show_progress: bool = False,
    distractors: Sequence[str | os.PathLike[str]] = (),
    run_output: str | os.PathLike[str] | None = None,
    significance: str | None = "randomization",
    n_resamples: int = 10_000,
    **config: Any,
) -> Evaluation:
    """Table 9 on a loaded BioASQ set: pool the distractors, index, run :func:`~es_biomed.eval.table9.table9_plans`
    and score them (:func:`~es_biomed.eval.table9.score_table9`).

    Returns:
        An :class:`Evaluation` whose ``result`` is ``{"table", "gain", "significance", "pairs_kept",
        "pairs_removed", "config"}`` (``table[run][k][metric]`` for ``bm25``, ``bm25+cosine``, ``bm25+rerank``).
    """
    _seed()
    if distractors:
        ds = add_distractors(ds, distractors)
    missing = check_qrels(ds, "BioASQ")
    index = ensure_index(ds, index_path, encoder, show_progress)
    depth = max(max(windows), 10 + max((len(v) for v in ds.ignore.values()), default=0))
    plans = table9_plans(plan, windows, depth)
    runs = run_modes(index, ds, encoder, plans, show_progress)
    scored = score_table9(ds, runs, windows, significance, n_resamples)
    scored.pop("per_query")
    result: dict[str, Any] = {
        **scored,
        "pairs_kept": ds.stats["pairs_kept"],
        "pairs_removed": ds.stats["pairs_removed"],
    }
    cfg = _config(
        encoder,
        plan,
        **config,
        windows=list(windows),
        metrics=list(TABLE9_METRICS),
        stats={k: v for k, v in ds.stats.items() if k != "distractors"},
        documents=index.count(),
        queries=len(ds.queries),
        qrels_missing=missing,
    )
    return _finish(result, cfg, runs, ds, run_output)


def evaluate_bioasq(
    files: Sequence[str | os.PathLike[str]],
    index_path: Any,
    encoder: Encoder,
    plan: SearchPlan,
    windows: Sequence[int] = (20, 30, 40, 50),
    threshold: float | None = DEFAULT_JACCARD,
    show_progress: bool = False,
    distractors: Sequence[str | os.PathLike[str]] = (),
    run_output: str | os.PathLike[str] | None = None,
    significance: str | None = "randomization",
) -> dict[str, Any]:
    """The BioMedBERT paper's Table 9 protocol on BioASQ SQuAD files.

    The contexts of ``files`` (and the documents of ``distractors``) are indexed into ``index_path``; questions
    are queries; pairs with Jaccard overlap above ``threshold`` are removed (see :mod:`es_biomed.corpus.bioasq`).
    BM25's ranking does not depend on the window; the re-sorts' do.

    Returns:
        ``{"table": {"bm25": {"20": {"MRR@5": ..., "MRR@10": ...}, ...}, "bm25+cosine": ..., "bm25+rerank":
        ...}, "gain": ..., "significance": ..., "pairs_kept": N, "pairs_removed": M, "config": {...}}``
    """
    ds = load_bioasq(files, threshold)
    return table9_evaluation(
        ds,
        index_path,
        encoder,
        plan,
        windows,
        show_progress,
        distractors,
        run_output,
        significance,
        files=[str(Path(f)) for f in files],
    ).result


def evaluate_bioasq_questions(
    files: Sequence[str | os.PathLike[str]],
    question_ids: Collection[str],
    index_path: Any,
    encoder: Encoder,
    plan: SearchPlan,
    windows: Sequence[int] = (20, 30, 40, 50),
    threshold: float | None = DEFAULT_JACCARD,
    show_progress: bool = False,
    distractors: Sequence[str | os.PathLike[str]] = (),
    significance: str | None = "randomization",
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

    ds = load_bioasq_split(files, question_ids, threshold)
    ids = sorted(set(question_ids))
    return table9_evaluation(
        ds,
        index_path,
        encoder,
        plan,
        windows,
        show_progress,
        distractors,
        None,
        significance,
        files=[str(Path(f)) for f in files],
        question_ids=len(ids),
        question_ids_sha256=hashlib.sha256("\n".join(ids).encode()).hexdigest(),
    ).result
