"""End-to-end BioASQ factoid QA in the layout of the BioMedBERT paper's Table 8.

The questions are the **dev** split of the given BioASQ 7b-train file(s): :func:`~es_biomed.corpus.bioasq.split_by_question`
(``dev_fraction`` 0.2), the questions ``biomed-qa`` and ``biomed-minilm`` never saw in training. The 4b-6b test
files are refused: about 70 % of their questions occur in 7b-train. Each question gets its top 5 answers, scored
with BioASQ's strict accuracy, lenient accuracy and MRR (:func:`~es_biomed.eval.task_metrics.bioasq_factoid_scores`)
against the gold synonyms of all its contexts, in three settings:

* ``gold context``: the reader reads the question's own gold contexts (the paper's setting; each context whole);
* ``bm25``: the reader reads the top ``passages`` passages BM25 retrieves from the index;
* ``bm25+rerank``: the same after the cosine rescore (the default plan).

The index holds every context of the dev questions (the corpus of ``training/eval_retrieval.py``'s BioASQ-dev
index, :func:`~es_biomed.corpus.bioasq.load_bioasq_split`); it is built on first use. ``answer_in_passages`` is the
share of questions whose read passages contain a gold synonym (case-insensitive substring): the ceiling a reader
could reach on those passages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from es_biomed.corpus.bioasq import DEFAULT_DEV_FRACTION, context_id
from es_biomed.eval.task_metrics import BIOASQ_TOP_K, bioasq_factoid_scores
from es_biomed.qa.errors import QaParameterError
from es_biomed.qa.pipeline import Asker, read_windows
from es_biomed.qa.reader import SpanReader
from es_biomed.qa.windows import Window

__all__ = ["SETTINGS", "evaluate_qa", "qa_markdown", "tune_rank_weight"]

#: Setting name -> search mode (``None``: the gold contexts, no search).
SETTINGS: dict[str, str | None] = {"gold context": None, "bm25": "bm25", "bm25+rerank": "rerank"}
_LEAKY = re.compile(r"test.*factoid-[4-6]b", re.IGNORECASE)


def evaluate_qa(
    files: Sequence[str | os.PathLike[str]],
    index_target: Any,
    encoder: Any,
    reader: SpanReader,
    *,
    passages: int = 20,
    k: int = BIOASQ_TOP_K,
    dev_fraction: float = DEFAULT_DEV_FRACTION,
    null_threshold: float | None = 0.0,
    rank_weight: float | None = None,
    max_questions: int | None = None,
    settings: Sequence[str] = tuple(SETTINGS),
    show_progress: bool = False,
) -> dict[str, Any]:
    """Score the reader on the BioASQ 7b dev questions in the three settings (see the module docstring).

    Args:
        files: BioASQ 7b-train SQuAD file(s).
        index_target: Embedded index directory (built from the dev contexts if needed) or a cluster backend.
        encoder: The index's encoder (an :class:`~es_biomed.encode.Encoder`).
        reader: The QA reader.
        passages: Passages read per question in the retrieved settings.
        k: Answers scored per question (BioASQ: 5).
        dev_fraction: The split's dev share (0.2: the project's split).
        null_threshold: The reader's null rule (``None``: off).
        rank_weight: Retrieval prior of :class:`~es_biomed.qa.pipeline.Asker` (default: its default).
        max_questions: Score only the first N dev questions (by id), over an index of their contexts only: a quick
            check, not comparable with the full run.
        settings: Which of :data:`SETTINGS` to run.
        show_progress: tqdm bars while indexing and reading.

    Returns:
        ``{"config": {...}, "table": {setting: {"strict_acc", "lenient_acc", "mrr", "questions",
        "answer_in_passages", "seconds"}}, "predictions": {setting: {qid: [answer, ...]}}}``.

    Raises:
        QaParameterError: a 4b-6b test file, an unknown setting, ``passages``/``k``/``max_questions`` <= 0.
    """
    from es_biomed.corpus.bioasq import load_bioasq_split
    from es_biomed.corpus.tasks import gold_answers, read_squad, split_questions
    from es_biomed.eval.protocols import ensure_index
    from es_biomed.models.files import sha256_file

    for f in files:
        if _LEAKY.search(Path(f).name):
            raise QaParameterError(
                "files",
                f"{f}: the BioASQ 4b-6b test questions recur in 7b-train (which biomed-qa is trained on); "
                "evaluate on BioASQ-train-factoid-7b.json, whose dev split is held out",
            )
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise QaParameterError("settings", f"unknown {unknown}; expected some of {list(SETTINGS)}")
    for name, value in (("passages", passages), ("k", k), ("max_questions", max_questions)):
        if value is not None and value <= 0:
            raise QaParameterError(name, f"must be a positive integer, got {value}")
    examples = [ex for f in files for ex in read_squad(f)]
    _, dev = split_questions(examples, dev_fraction)
    gold_all = gold_answers(dev)
    qids = sorted(gold_all)[:max_questions] if max_questions else sorted(gold_all)
    gold = {q: gold_all[q] for q in qids}
    questions: dict[str, str] = {}
    contexts: dict[str, dict[str, str]] = {}  # qid -> {context id: context}, one per whitespace-normalized text
    for ex in dev:
        if ex.question_id in gold:
            questions.setdefault(ex.question_id, ex.question)
            contexts.setdefault(ex.question_id, {}).setdefault(context_id(ex.context), ex.context)

    table: dict[str, dict[str, Any]] = {}
    predictions: dict[str, dict[str, list[str]]] = {}
    asker = None
    if any(SETTINGS[s] for s in settings):
        # the full run indexes every dev context; a quick check (max_questions) only its questions' contexts
        ds = load_bioasq_split(files, qids if max_questions else sorted({ex.question_id for ex in dev}), None)
        index = ensure_index(ds, index_target, encoder, show_progress)
        from es_biomed.search.searcher import Searcher

        target = Searcher(index, encoder) if not hasattr(index, "encoder_meta") else index
        asker = Asker(
            target, reader, passages, encoder=encoder, null_threshold=null_threshold, rank_weight=rank_weight
        )
    for setting in settings:
        mode = SETTINGS[setting]
        t0 = time.perf_counter()
        preds: dict[str, list[str]] = {}
        covered = 0
        for qid in _progress(qids, setting, show_progress):
            question = questions[qid]
            if mode is None:
                windows = [Window(cid, "abstract", 0, len(c), c) for cid, c in contexts[qid].items()]
                sources = {w.doc_id: {"abstract": w.text} for w in windows}
            else:
                assert asker is not None
                windows, sources = asker.retrieve(question, {"mode": mode})
            weight = asker.rank_weight if asker is not None else 0.0  # gold contexts all have rank 0
            answers = read_windows(
                reader, question, windows, sources, k, null_threshold=null_threshold, rank_weight=weight
            )
            preds[qid] = [a.text for a in answers]
            synonyms = [g.lower() for g in gold[qid]]
            covered += any(s in w.text.lower() for w in windows for s in synonyms)
        scores = bioasq_factoid_scores(preds, gold, k)
        scores["answer_in_passages"] = covered / len(qids)
        scores["seconds"] = round(time.perf_counter() - t0, 1)
        table[setting] = scores
        predictions[setting] = preds
    config = {
        "files": [{"path": str(f), "sha256": sha256_file(f)} for f in files],
        "split": {
            "function": "es_biomed.corpus.bioasq.split_by_question",
            "dev_fraction": dev_fraction,
            "dev_questions": len(gold_all),
            "questions_scored": len(qids),
            "question_ids_sha256": hashlib.sha256("\n".join(qids).encode()).hexdigest(),
        },
        "reader": {"name": reader.name, "runtime": reader.runtime, **reader.config.to_dict()},
        "null_threshold": null_threshold,
        "rank_weight": None if asker is None else asker.rank_weight,
        "passages": passages,
        "k": k,
        "encoder": encoder.info.to_dict() if hasattr(encoder, "info") else None,
        "plan": None if asker is None else dataclasses.asdict(asker._plan("", {"mode": "rerank"})),
    }
    return {"config": config, "table": table, "predictions": predictions}


def qa_markdown(result: dict[str, Any]) -> str:
    """The Table 8-style Markdown table of :func:`evaluate_qa`'s result."""
    cfg = result["config"]
    lines = [
        f"BioASQ 7b dev questions ({cfg['split']['questions_scored']}), top-{cfg['k']} answers, reader "
        f"{cfg['reader']['name']} ({cfg['reader']['runtime']}), {cfg['passages']} passages per question",
        "",
        "| setting | Strict Acc | Lenient Acc | MRR | answer in passages |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["table"].items():
        lines.append(
            f"| {name} | {row['strict_acc']:.4f} | {row['lenient_acc']:.4f} | {row['mrr']:.4f} | "
            f"{row['answer_in_passages']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def _progress(items: list[str], desc: str, show: bool) -> Any:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="q")


def tune_rank_weight(
    files: Sequence[str | os.PathLike[str]],
    index_target: Any,
    encoder: Any,
    reader: SpanReader,
    weights: Sequence[float],
    *,
    passages: int = 20,
    k: int = BIOASQ_TOP_K,
    dev_fraction: float = DEFAULT_DEV_FRACTION,
    mode: str = "rerank",
    max_questions: int | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """BioASQ factoid scores of each retrieval-prior weight on the **train** questions of the split (never dev).

    Every train question's passages are retrieved (``mode``) from an index of the train questions' contexts and
    read once; each weight then re-ranks the same candidates (``reader score - weight * ln(1 + rank)``, merged as
    :func:`~es_biomed.qa.answers.merge_answers` does).

    Returns:
        ``{"grid": {weight: scores}, "best": weight (highest MRR, ties: the smaller weight), "config": {...}}``.
    """
    import math

    from es_biomed.corpus.bioasq import load_bioasq_split
    from es_biomed.corpus.tasks import gold_answers, read_squad, split_questions
    from es_biomed.eval.protocols import ensure_index
    from es_biomed.qa.answers import Answer, merge_answers
    from es_biomed.search.searcher import Searcher

    examples = [ex for f in files for ex in read_squad(f)]
    train, _ = split_questions(examples, dev_fraction)
    gold_all = gold_answers(train)
    qids = sorted(gold_all)[:max_questions] if max_questions else sorted(gold_all)
    gold = {q: gold_all[q] for q in qids}
    questions: dict[str, str] = {}
    for ex in train:
        questions.setdefault(ex.question_id, ex.question)
    index = ensure_index(load_bioasq_split(files, qids, None), index_target, encoder, show_progress)
    target = Searcher(index, encoder) if not hasattr(index, "encoder_meta") else index
    asker = Asker(target, reader, passages, encoder=encoder, rank_weight=0.0)
    raw: dict[str, list[tuple[Answer, int]]] = {}
    for qid in _progress(qids, "train questions", show_progress):
        windows, sources = asker.retrieve(questions[qid], {"mode": mode})
        spans = reader.read(questions[qid], [w.text for w in windows], null_threshold=asker.null_threshold)
        raw[qid] = [
            (Answer(w.text[sp.start : sp.end], sp.score, w.doc_id, "", None, "", sp.start, sp.end, w.field), w.rank)
            for w, found_spans in zip(windows, spans, strict=True)
            for sp in found_spans
        ]
    grid: dict[str, dict[str, float]] = {}
    for weight in weights:
        preds = {}
        for qid, cands in raw.items():
            shifted = [
                Answer(a.text, a.score - weight * math.log1p(rank), *dataclasses.astuple(a)[2:]) for a, rank in cands
            ]
            preds[qid] = [a.text for a in merge_answers(shifted, k)]
        grid[str(weight)] = bioasq_factoid_scores(preds, gold, k)
    best = max(weights, key=lambda w: (grid[str(w)]["mrr"], -w))
    config = {
        "split": "train",
        "dev_fraction": dev_fraction,
        "questions": len(qids),
        "mode": mode,
        "passages": passages,
        "reader": reader.name,
        "encoder": encoder.info.to_dict() if hasattr(encoder, "info") else None,
    }
    return {"grid": grid, "best": best, "config": config}
