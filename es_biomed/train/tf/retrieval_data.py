"""Training data of the contrastive retrieval fine-tuning: (question, passage) examples with BM25 hard negatives, batches, and the in-batch false-negative mask."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.corpus.types import RetrievalSet
from es_biomed.errors import EsBiomedError
from es_biomed.models.files import sha256_file
from es_biomed.query.plan import SearchPlan
from es_biomed.train.data.mining import build_bm25_index, merge_sets, mine_hard_negatives
from es_biomed.train.data.provenance import (
    ids_sha256,
)
from es_biomed.train.tf.retrieval_config import RetrievalTrainConfig

__all__ = ["TrainExample", "build_examples", "iter_batches", "batch_mask", "TrainingData", "prepare_training_data"]


@dataclass(frozen=True)
class TrainExample:
    """One (question, positive, hard negatives) training example."""

    qid: str
    query: str
    pos_id: str
    positive: str
    neg_ids: tuple[str, ...] = ()
    negatives: tuple[str, ...] = ()
    #: Batches never mix groups (see :func:`iter_batches`); :func:`build_examples` uses the query id's prefix.
    group: str = ""


def build_examples(
    ds: RetrievalSet,
    negatives: Mapping[str, Sequence[str]] | None = None,
    exclude_docs: Collection[str] = (),
    n: int | None = None,
) -> list[TrainExample]:
    """One example per relevant (question, document) pair of ``ds``, in sorted (qid, doc id) order.

    Args:
        ds: Queries, corpus and qrels (grades > 0 are positives).
        negatives: ``{qid: negative doc ids}`` from :func:`mine_hard_negatives`.
        exclude_docs: Documents never used as positives or negatives (e.g. contexts of held-out questions).
        n: Negatives per example; examples with fewer mined negatives are dropped (``None``: all there are).

    Raises:
        EsBiomedError: a qrel or negative names a document missing from the corpus.
    """
    excluded = set(exclude_docs)
    examples = []
    for qid in sorted(ds.queries):
        negs = [d for d in (negatives or {}).get(qid, []) if d not in excluded]
        if n is not None:
            if len(negs) < n:
                continue
            negs = negs[:n]
        for doc_id in sorted(ds.qrels.get(qid, {})):
            if ds.qrels[qid][doc_id] <= 0 or doc_id in excluded:
                continue
            for d in (doc_id, *negs):
                if d not in ds.corpus:
                    raise EsBiomedError(f"question {qid!r}: document {d!r} is not in the corpus")
            examples.append(
                TrainExample(
                    qid=qid,
                    query=ds.queries[qid],
                    pos_id=doc_id,
                    positive=ds.corpus[doc_id].text,
                    neg_ids=tuple(negs),
                    negatives=tuple(ds.corpus[d].text for d in negs),
                    group=qid.split(":", 1)[0] if ":" in qid else "",
                )
            )
    return examples


def iter_batches(
    examples: Sequence[TrainExample], batch_size: int, seed: int, epoch: int
) -> Iterator[list[TrainExample]]:
    """Batches of one epoch; each batch holds examples of one ``group`` only (one data set: similar lengths, so
    little padding, and in-domain in-batch negatives).

    With ``rng = numpy.random.default_rng(seed + epoch)``: the examples of each group (groups in sorted order) are
    permuted and cut into batches, then the batches are permuted.
    """
    rng = np.random.default_rng(seed + epoch)
    batches: list[list[int]] = []
    for group in sorted({ex.group for ex in examples}):
        idx = np.array([i for i, ex in enumerate(examples) if ex.group == group])
        idx = idx[rng.permutation(len(idx))]
        batches.extend(idx[s : s + batch_size].tolist() for s in range(0, len(idx), batch_size))
    for b in rng.permutation(len(batches)):
        yield [examples[i] for i in batches[b]]


def batch_mask(batch: Sequence[TrainExample], positives: Mapping[str, Collection[str]]) -> np.ndarray:
    """Boolean ``[B, B + B*n]``: ``False`` where a column's document is relevant to the row's question but is not
    the row's own positive (columns: the positives in batch order, then every example's negatives)."""
    cols = [ex.pos_id for ex in batch] + [d for ex in batch for d in ex.neg_ids]
    mask = np.ones((len(batch), len(cols)), dtype=bool)
    for i, ex in enumerate(batch):
        rel = positives.get(ex.qid, ())
        for j, doc_id in enumerate(cols):
            if j != i and (doc_id in rel or doc_id == ex.pos_id):
                mask[i, j] = False
    return mask


@dataclass
class TrainingData:
    """Examples ready for :func:`train_retrieval`, with what produced them.

    Attributes:
        examples: The training examples.
        positives: ``{qid: relevant doc ids}`` (ids prefixed by data set, see :func:`merge_sets`).
        dev_ids: BioASQ question ids held out for evaluation (never trained on).
        provenance: Input files with their sha256, split hashes and counts (goes into ``training_meta.json``).
    """

    examples: list[TrainExample]
    positives: dict[str, set[str]]
    dev_ids: list[str]
    provenance: dict[str, Any]


def prepare_training_data(
    bioasq_files: Sequence[str | os.PathLike[str]],
    config: RetrievalTrainConfig,
    scifact_dir: str | os.PathLike[str] | None = None,
    dev_fraction: float = 0.2,
    plan: SearchPlan | None = None,
) -> TrainingData:
    """BioASQ train-split pairs (and optionally SciFact *train* pairs) with BM25 hard negatives.

    The BioASQ questions are split with :func:`~es_biomed.corpus.bioasq.split_by_question`; every pair of a
    train question is an example (the Jaccard rule is an evaluation rule and does not apply here), except pairs
    whose context is also a context of a dev question: dev contexts are never trained on, as positives or
    negatives. SciFact contributes its ``qrels/train.tsv`` pairs only (never the test queries). Negatives are
    mined per data set (a BioASQ question gets BioASQ contexts) in a BM25-only embedded index.

    Args:
        bioasq_files: BioASQ SQuAD training files (7b train).
        config: Supplies ``hard_negatives``, ``mining_depth`` and ``mining_skip``.
        scifact_dir: BEIR SciFact directory, or ``None`` for BioASQ only.
        dev_fraction: Share of BioASQ questions held out.
        plan: BM25 field boosts for mining (default: ``presets.default_plan()``).
    """
    import tempfile

    from es_biomed.corpus.bioasq import load_bioasq, load_bioasq_split, split_by_question
    from es_biomed.query.presets import default_plan

    files = [Path(f) for f in bioasq_files]
    every = load_bioasq(files, None)
    train_ids, dev_ids = split_by_question(every.queries, dev_fraction)
    train = load_bioasq_split(files, train_ids, None)
    dev = load_bioasq_split(files, dev_ids, None)
    sets: dict[str, RetrievalSet] = {"bioasq": train}
    inputs = {str(f): sha256_file(f) for f in files}
    if scifact_dir is not None:
        from es_biomed.corpus.readers import load_beir

        d = Path(scifact_dir)
        sets["scifact"] = load_beir(d, "train")
        for name in ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv"):
            inputs[str(d / name)] = sha256_file(d / name)
    ds = merge_sets(sets)
    positives = {q: {doc for doc, g in rels.items() if g > 0} for q, rels in ds.qrels.items()}
    with tempfile.TemporaryDirectory(prefix="es-biomed-mining-") as tmp:
        index = build_bm25_index(ds.corpus.values(), Path(tmp) / "bm25")
        negatives = mine_hard_negatives(
            index,
            ds.queries,
            positives,
            plan or default_plan(),
            n=config.hard_negatives,
            depth=config.mining_depth,
            skip=config.mining_skip,
            sources={q: q.split(":", 1)[0] for q in ds.queries},
        )
    excluded = {f"bioasq:{c}" for c in dev.corpus}
    examples = build_examples(ds, negatives, excluded, n=config.hard_negatives)
    per_set = {name: sum(1 for ex in examples if ex.group == name) for name in sets}
    provenance = {
        "inputs_sha256": inputs,
        "split": {
            "method": "es_biomed.corpus.bioasq.split_by_question (sha1 of normalized question text)",
            "dev_fraction": dev_fraction,
            "train_questions": len(train_ids),
            "dev_questions": len(dev_ids),
            "train_question_ids_sha256": ids_sha256(train_ids),
            "dev_question_ids_sha256": ids_sha256(dev_ids),
        },
        "examples": len(examples),
        "examples_per_set": per_set,
        "dev_contexts_excluded": len(excluded & set(ds.corpus)),
        "queries_per_set": {name: len(s.queries) for name, s in sets.items()},
    }
    return TrainingData(examples=examples, positives=positives, dev_ids=dev_ids, provenance=provenance)
