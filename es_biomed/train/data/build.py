"""Build the training-pair dataset: judged pairs plus self-supervised pairs, with mined, filtered hard negatives.

Self-supervised pairs come from every usable abstract of every source (see :mod:`es_biomed.train.data.sources`
for what is held out):

* ``title``: the title -> the abstract without its title (documents with a title of at least 3 words and an
  abstract of at least 20);
* ``ict``: inverse cloze (Lee et al. 2019): one sentence of at least 6 words -> the title and the abstract with
  that sentence removed (abstracts of at least 3 sentences; the sentence is drawn with a per-document seed).

Negatives are mined within the pair's own source: BM25 top ``mining_depth`` (the embedded engine, default
field boosts) and cosine top ``mining_depth`` under ``encoder``, both filtered by
:func:`~es_biomed.train.data.mining.filter_false_negatives` against the pair's positive. Each pair keeps up to
``negatives_bm25`` BM25 and ``negatives_dense`` dense negatives; pairs left with fewer are dropped and counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.corpus.types import Document
from es_biomed.errors import EsBiomedError
from es_biomed.models.files import sha256_file
from es_biomed.train.data.mining import build_bm25_index, dense_candidates, filter_false_negatives, mine_hard_negatives
from es_biomed.train.data.pairs import Negative, Pair, write_pairs
from es_biomed.train.data.sources import SOURCE_NAMES, Source, load_sources

__all__ = ["DatasetConfig", "build_dataset", "self_supervised_pairs", "PAIRS_FILE", "MANIFEST_FILE"]

logger = logging.getLogger(__name__)
PAIRS_FILE = "pairs.jsonl"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class DatasetConfig:
    sources: tuple[str, ...] = SOURCE_NAMES
    dev_fraction: float = 0.2
    kinds: tuple[str, ...] = ("supervised", "title", "ict")
    negatives_bm25: int = 1
    negatives_dense: int = 1
    mining_depth: int = 30
    max_ratio: float = 0.95
    #: Encoder for dense negatives and the false-negative filter (``None``: BM25 negatives, no filter).
    encoder: str | None = "all-MiniLM-L6-v2"
    seed: int = 13
    #: Cap on self-supervised pairs per (source, kind), drawn with ``seed`` (``None``: all).
    max_self_supervised: int | None = None


def _words(text: str) -> int:
    return len(text.split())


def self_supervised_pairs(source: str, docs: dict[str, Document], kinds: Sequence[str], seed: int) -> list[Pair]:
    """``title`` and ``ict`` pairs of one source's documents (no negatives yet), in document-id order."""
    from es_biomed.qa.sentences import sentence_spans

    out: list[Pair] = []
    for doc_id in sorted(docs):
        doc = docs[doc_id]
        pos_id = f"{source}:{doc_id}"
        if "title" in kinds and _words(doc.title) >= 3 and _words(doc.abstract) >= 20:
            out.append(
                Pair(
                    f"{source}:title:{doc_id}",
                    source,
                    "title",
                    f"{source}:title:{doc_id}",
                    doc.title.strip(),
                    pos_id,
                    doc.abstract.strip(),
                )
            )
        if "ict" in kinds:
            spans = sentence_spans(doc.abstract)
            usable = [i for i, (s, e) in enumerate(spans) if _words(doc.abstract[s:e]) >= 6]
            if len(spans) >= 3 and usable:
                rng = random.Random(f"{seed}:{source}:{doc_id}")
                i = rng.choice(usable)
                s, e = spans[i]
                rest = (doc.abstract[:s] + doc.abstract[e:]).strip()
                rest = " ".join(rest.split())
                positive = f"{doc.title.strip()} {rest}".strip()
                out.append(
                    Pair(
                        f"{source}:ict:{doc_id}",
                        source,
                        "ict",
                        f"{source}:ict:{doc_id}",
                        doc.abstract[s:e],
                        pos_id,
                        positive,
                    )
                )
    return out


def _supervised(src: Source) -> list[Pair]:
    return [
        Pair(
            id=f"{src.name}:{p.qid}:{p.doc_id}",
            source=src.name,
            kind="supervised",
            qid=f"{src.name}:{p.qid}",
            query=p.query,
            pos_id=f"{src.name}:{p.doc_id}",
            positive=src.documents[p.doc_id].text,
        )
        for p in src.pairs
        if p.doc_id in src.documents
    ]


def build_dataset(
    data_dir: str | Path,
    out_dir: str | Path,
    config: DatasetConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build ``out_dir/pairs.jsonl`` and ``out_dir/manifest.json`` from the sources in ``data_dir``.

    Returns:
        The manifest (inputs with sha256, splits, counts per source and kind, mining statistics, the pair
        file's sha256).
    """
    cfg = config or DatasetConfig()
    say = progress or (lambda msg: logger.info(msg))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sources = load_sources(data_dir, tuple(cfg.sources), cfg.dev_fraction)
    pairs: list[Pair] = []
    for src in sources.values():
        if "supervised" in cfg.kinds:
            pairs.extend(_supervised(src))
        ss = self_supervised_pairs(src.name, src.documents, [k for k in cfg.kinds if k != "supervised"], cfg.seed)
        if cfg.max_self_supervised is not None:
            for kind in ("title", "ict"):
                mine = [p for p in ss if p.kind == kind]
                if len(mine) > cfg.max_self_supervised:
                    keep = set(
                        random.Random(f"{cfg.seed}:{src.name}:{kind}").sample(
                            range(len(mine)), cfg.max_self_supervised
                        )
                    )
                    drop = {p.id for i, p in enumerate(mine) if i not in keep}
                    ss = [p for p in ss if p.id not in drop]
        pairs.extend(ss)
    if not pairs:
        raise EsBiomedError(f"no training pairs from {', '.join(cfg.sources)} in {data_dir}")
    corpus = {
        f"{name}:{d}": Document(id=f"{name}:{d}", title=doc.title, abstract=doc.abstract, source=name)
        for name, src in sources.items()
        for d, doc in src.documents.items()
    }
    positives: dict[str, set[str]] = {}
    for p in pairs:
        positives.setdefault(p.qid, set()).add(p.pos_id)
    queries = {p.qid: p.query for p in pairs}
    say(f"{len(pairs)} pairs, {len(queries)} queries, {len(corpus)} documents; BM25 mining")

    with tempfile.TemporaryDirectory(prefix="es-biomed-mining-") as tmp:
        index = build_bm25_index(corpus.values(), Path(tmp) / "bm25")
        from es_biomed.query.presets import default_plan

        bm25 = mine_hard_negatives(
            index,
            queries,
            positives,
            default_plan(),
            n=cfg.mining_depth,
            depth=cfg.mining_depth,
            sources={q: q.split(":", 1)[0] for q in queries},
        )
    say(f"BM25 mining done ({time.perf_counter() - t0:.0f} s)")

    qvec: dict[str, np.ndarray] = {}
    dvec: dict[str, np.ndarray] = {}
    dense: dict[str, list[tuple[str, float]]] = {}
    encoder_info: dict[str, Any] | None = None
    if cfg.encoder:
        from es_biomed.encode.loading import load_document_encoder

        enc = load_document_encoder(cfg.encoder)
        encoder_info = {"name": enc.info.name, "fingerprint": enc.info.fingerprint}
        doc_ids = sorted(corpus)
        vecs = enc.encode_documents([corpus[d].text for d in doc_ids], batch_size=32)
        dvec = dict(zip(doc_ids, vecs, strict=True))
        qids = sorted(queries)
        qv = enc.encode_queries([queries[q] for q in qids], batch_size=64)
        qvec = dict(zip(qids, qv, strict=True))
        say(f"encoded {len(doc_ids)} documents and {len(qids)} queries ({time.perf_counter() - t0:.0f} s)")
        for name in sources:
            ids = [d for d in doc_ids if d.startswith(f"{name}:")]
            mat = np.stack([dvec[d] for d in ids]) if ids else np.zeros((0, qv.shape[1]), np.float32)
            mq = [q for q in qids if q.startswith(f"{name}:")]
            if not mq:
                continue
            cands = dense_candidates(
                np.stack([qvec[q] for q in mq]), mat, ids, [positives[q] for q in mq], cfg.mining_depth
            )
            dense.update(zip(mq, cands, strict=True))

    stats = {"bm25_dropped": 0, "dense_dropped": 0, "pairs_without_enough_negatives": 0}
    final: list[Pair] = []
    for p in pairs:
        b = [(d, float(qvec[p.qid] @ dvec[d])) if qvec else (d, 0.0) for d in bm25.get(p.qid, [])]
        if qvec:
            pos_score = float(qvec[p.qid] @ dvec[p.pos_id])
            kept_b, nb = filter_false_negatives(b, pos_score, cfg.max_ratio)
            kept_d, nd = filter_false_negatives(dense.get(p.qid, []), pos_score, cfg.max_ratio)
            stats["bm25_dropped"] += nb
            stats["dense_dropped"] += nd
        else:
            kept_b, kept_d = [d for d, _ in b], []
        chosen = [(d, "bm25") for d in kept_b[: cfg.negatives_bm25]]
        taken = {d for d, _ in chosen}
        chosen += [(d, "dense") for d in kept_d if d not in taken][: cfg.negatives_dense]
        want = cfg.negatives_bm25 + (cfg.negatives_dense if qvec else 0)
        if len(chosen) < want:
            stats["pairs_without_enough_negatives"] += 1
            continue
        negs = tuple(Negative(d, corpus[d].text, miner) for d, miner in chosen)
        final.append(Pair(p.id, p.source, p.kind, p.qid, p.query, p.pos_id, p.positive, negs))

    counts: dict[str, dict[str, int]] = {}
    for p in final:
        counts.setdefault(p.source, {}).setdefault(p.kind, 0)
        counts[p.source][p.kind] += 1
    header = {"config": asdict(cfg)}
    n = write_pairs(out / PAIRS_FILE, final, header)
    manifest = {
        "format": "es-biomed-pairs/1",
        "config": asdict(cfg),
        "pairs": n,
        "pairs_per_source_kind": counts,
        "documents": len(corpus),
        "mining": {**stats, "encoder": encoder_info},
        "sources": {
            name: {"inputs_sha256": src.inputs_sha256, "split": src.split, "documents": len(src.documents)}
            for name, src in sources.items()
        },
        "pairs_sha256": sha256_file(out / PAIRS_FILE),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    manifest["dataset_sha256"] = hashlib.sha256(
        json.dumps({k: manifest[k] for k in ("config", "sources", "pairs_sha256")}, sort_keys=True).encode()
    ).hexdigest()
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
