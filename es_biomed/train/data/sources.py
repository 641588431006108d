"""Every non-test source in ``../shared/data`` as training material: judged pairs, and abstracts for
self-supervised pairs.

Splits (fixed, hash-based, no random state):

* BioASQ 7b-train: :func:`~es_biomed.corpus.bioasq.split_by_question` (80/20); dev questions and every context
  of a dev question are left out of everything (positives, negatives, self-supervised pairs).
* SciFact: ``qrels/train.tsv`` only. Its claims are split the same way into train and a query-disjoint **dev**
  (20 %) used for model selection. ``qrels/test.tsv`` is read for one thing only: train claims whose text equals a
  test claim (two in SciFact) are dropped, so no test question is trained on. The corpus abstracts (shared by all
  splits, unjudged here) give self-supervised pairs and negatives.
* PubMedQA (PQA-L, ``ori_pqal.json``): the 500 questions listed in ``test_ground_truth.json`` are the test
  split; they and their contexts are left out of everything.
* CORD-19 sample: abstracts only (no judgements).
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from es_biomed.corpus.bioasq import DEFAULT_DEV_FRACTION, load_bioasq, load_bioasq_split, split_by_question
from es_biomed.corpus.readers import iter_documents, load_beir
from es_biomed.corpus.types import Document
from es_biomed.errors import EsBiomedError
from es_biomed.models.files import sha256_file
from es_biomed.train.data.provenance import ids_sha256

__all__ = ["Source", "SupervisedPair", "load_sources", "scifact_split", "SOURCE_NAMES"]

SOURCE_NAMES = ("bioasq", "scifact", "pubmedqa", "cord19")


@dataclass(frozen=True)
class SupervisedPair:
    qid: str
    query: str
    doc_id: str


@dataclass
class Source:
    """One data set: its usable documents, its judged training pairs, and what was held out."""

    name: str
    documents: dict[str, Document]
    pairs: list[SupervisedPair] = field(default_factory=list)
    inputs_sha256: dict[str, str] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)


def scifact_split(directory: str | os.PathLike[str], dev_fraction: float = DEFAULT_DEV_FRACTION):
    """SciFact's ``train`` claims split by claim text into ``(train_ids, dev_ids)`` (``split_by_question``),
    leaving out train claims whose text equals a test claim's."""
    train_ids, dev_ids, _ = _scifact_ids(Path(directory), dev_fraction)
    return train_ids, dev_ids


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _scifact_ids(directory: Path, dev_fraction: float) -> tuple[list[str], list[str], list[str]]:
    from es_biomed.corpus.readers import read_qrels, read_queries

    queries = read_queries(directory / "queries.jsonl")
    train_q = {q: queries[q] for q in read_qrels(directory / "qrels" / "train.tsv") if q in queries}
    test_texts = {_norm(queries[q]) for q in read_qrels(directory / "qrels" / "test.tsv") if q in queries}
    leaked = sorted(q for q, text in train_q.items() if _norm(text) in test_texts)
    train_ids, dev_ids = split_by_question({q: t for q, t in train_q.items() if q not in set(leaked)}, dev_fraction)
    return train_ids, dev_ids, leaked


def _bioasq(files: list[Path], dev_fraction: float) -> Source:
    every = load_bioasq(files, None)
    train_ids, dev_ids = split_by_question(every.queries, dev_fraction)
    train = load_bioasq_split(files, train_ids, None)
    dev = load_bioasq_split(files, dev_ids, None)
    held = set(dev.corpus)
    pairs = [
        SupervisedPair(q, train.queries[q], d)
        for q in sorted(train.qrels)
        for d in sorted(train.qrels[q])
        if train.qrels[q][d] > 0 and d not in held
    ]
    docs = {d: doc for d, doc in every.corpus.items() if d not in held}
    return Source(
        "bioasq",
        docs,
        pairs,
        {str(f): sha256_file(f) for f in files},
        {
            "method": "es_biomed.corpus.bioasq.split_by_question",
            "dev_fraction": dev_fraction,
            "train_questions": len(train_ids),
            "dev_questions": len(dev_ids),
            "train_question_ids_sha256": ids_sha256(train_ids),
            "dev_question_ids_sha256": ids_sha256(dev_ids),
            "dev_contexts_held_out": len(held),
        },
    )


def _scifact(directory: Path, dev_fraction: float) -> Source:
    ds = load_beir(directory, "train")
    train_ids, dev_ids, leaked = _scifact_ids(directory, dev_fraction)
    pairs = [
        SupervisedPair(q, ds.queries[q], d)
        for q in train_ids
        for d in sorted(ds.qrels.get(q, {}))
        if ds.qrels[q][d] > 0 and d in ds.corpus
    ]
    docs = {d: doc for d, doc in ds.corpus.items() if doc.abstract.strip()}
    names = ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv")
    return Source(
        "scifact",
        docs,
        pairs,
        {str(directory / n): sha256_file(directory / n) for n in names},
        {
            "method": "split_by_question over qrels/train.tsv claims; qrels/test.tsv read only to drop train claims equal to a test claim",
            "dev_fraction": dev_fraction,
            "train_queries": len(train_ids),
            "dev_queries": len(dev_ids),
            "train_claims_equal_to_test_claims_dropped": sorted(leaked),
            "train_query_ids_sha256": ids_sha256(train_ids),
            "dev_query_ids_sha256": ids_sha256(dev_ids),
        },
    )


def _literal_list(value: Any, where: str) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise EsBiomedError(f"{where}: expected a list of strings") from None
    if not isinstance(parsed, list):
        raise EsBiomedError(f"{where}: expected a list of strings")
    return [str(v) for v in parsed]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise EsBiomedError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise EsBiomedError(f"{path}: line {exc.lineno}: malformed JSON: {exc.msg}") from None


def _pubmedqa(directory: Path) -> Source:
    path = directory / "ori_pqal.json"
    test_path = directory / "test_ground_truth.json"
    data = _read_json(path)
    test = set(_read_json(test_path))
    docs: dict[str, Document] = {}
    pairs = []
    for pmid in sorted(data):
        if pmid in test:
            continue
        row = data[pmid]
        where = f"{path}: question {pmid}"
        question = str(row.get("QUESTION", "")).strip()
        contexts = _literal_list(row.get("CONTEXTS", []), f"{where}: CONTEXTS")
        text = " ".join(c.strip() for c in contexts if c.strip())
        if not question or not text:
            raise EsBiomedError(f"{where}: empty QUESTION or CONTEXTS")
        docs[pmid] = Document(id=pmid, abstract=text, pmid=pmid, source="pubmedqa")
        pairs.append(SupervisedPair(f"q{pmid}", question, pmid))
    return Source(
        "pubmedqa",
        docs,
        pairs,
        {str(path): sha256_file(path), str(test_path): sha256_file(test_path)},
        {"method": "PQA-L minus the questions of test_ground_truth.json", "test_held_out": len(test)},
    )


def _cord19(path: Path) -> Source:
    docs = {d.id: d for d in iter_documents(path) if d.abstract.strip()}
    return Source("cord19", docs, [], {str(path): sha256_file(path)}, {"method": "abstracts only"})


def load_sources(
    data_dir: str | os.PathLike[str], names: tuple[str, ...] = SOURCE_NAMES, dev_fraction: float = DEFAULT_DEV_FRACTION
) -> dict[str, Source]:
    """Load the named sources from a ``shared/data`` directory.

    Raises:
        EsBiomedError: an unknown source name, or a source's files are missing (naming the path).
    """
    root = Path(data_dir)
    paths = {
        "bioasq": root / "bioasq" / "BioASQ-train-factoid-7b.json",
        "scifact": root / "scifact",
        "pubmedqa": root / "pubmedqa",
        "cord19": root / "cord19" / "merged_dedup_cord_uid.jsonl",
    }
    out: dict[str, Source] = {}
    for name in names:
        if name not in paths:
            raise EsBiomedError(f"unknown training source {name!r} (known: {', '.join(SOURCE_NAMES)})")
        if not paths[name].exists():
            raise EsBiomedError(f"training source {name!r}: {paths[name]} does not exist")
        if name == "bioasq":
            out[name] = _bioasq([paths[name]], dev_fraction)
        elif name == "scifact":
            out[name] = _scifact(paths[name], dev_fraction)
        elif name == "pubmedqa":
            out[name] = _pubmedqa(paths[name])
        else:
            out[name] = _cord19(paths[name])
    return out
