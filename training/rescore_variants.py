"""Other inputs to the cosine rescore, and another fusion, selected on dev only as ``tune_rescore.py`` does
(issue 12 attempts).

``ensemble``: the rescore's cosine is the mean of several encoders' cosines (each from its own evaluation index,
so every document vector is the one that encoder indexed). Every combination of the given encoders is scored.

``windows``: 71 % of SciFact abstracts are longer than MiniLM's 256 tokens, so the rescore sees only their start.
Each abstract longer than ``--words`` words is also cut into windows of that many words (``--overlap`` shared,
each prefixed with the title); a document's cosine is the best of passage 0 (title + abstract, as indexed) and its
windows (MaxP).

``fusion``: instead of the rescore's raw sum ``BM25 + w * (cosine + 1)``, whose BM25 scale differs per query, a
convex combination of per-query normalized scores over the window, ``a * norm(BM25) + (1 - a) * norm(cosine)``,
with min-max or z-score normalization (Bruch et al., "An Analysis of Fusion Functions for Hybrid Retrieval", 2023;
Elasticsearch's ``linear`` retriever with ``minmax`` does the first). Hits below the window keep BM25's order.

For ``ensemble`` and ``windows`` the grid of ``tune_rescore.py`` is scored on the SciFact dev claims; for
``fusion`` the grid is normalization x window (20 / 30 / 50 / 100) x ``a`` (0 to 1 by 0.05). The dev-best choice
and the default preset are then scored on SciFact test (once) and on BioASQ dev (MRR@10, k = window = 20 and 50).

    .venv/bin/python training/rescore_variants.py ensemble ../shared/data --index-dir runs/eval-indexes \\
        --member ft1=runs/bi/minilm/seed-1/fp16 --member ft2=runs/bi/minilm-s23/seed-2/fp16 \\
        --member mpnet=all-mpnet-base-v2 --member minilm=all-MiniLM-L6-v2 \\
        --output training/results/rescore_ensembles.json
    .venv/bin/python training/rescore_variants.py windows ../shared/data --index-dir runs/eval-indexes \\
        --encoder all-MiniLM-L6-v2 --words 128 --overlap 64 --output training/results/rescore_windows.json
    .venv/bin/python training/rescore_variants.py fusion ../shared/data --index-dir runs/eval-indexes \
        --member minilm=all-MiniLM-L6-v2 --member ft1=runs/bi/minilm/seed-1/fp16 --member mpnet=all-mpnet-base-v2 \
        --member biomed=biomed-minilm --output training/results/rescore_fusion.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.corpus.passages import PassageConfig, split_passages
from es_biomed.corpus.types import Document
from es_biomed.eval.metrics import evaluate
from es_biomed.query.cross_stage import minmax_normalize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_retrieval import fast_encoder  # noqa: E402
from tune_rescore import TIE, Splits  # noqa: E402

ALPHAS = tuple(round(a * 0.05, 2) for a in range(21))
NORMS = ("minmax", "z")


def _indexes(index_dir: Path, encoder: Any) -> tuple[EmbeddedIndex, EmbeddedIndex]:
    """The SciFact and BioASQ-dev evaluation indexes built with ``encoder`` (``eval_retrieval.py`` makes them)."""
    fingerprint = encoder.info.fingerprint
    found = sorted(index_dir.glob(f"scifact-test-*-{fingerprint}"))
    if not found:
        raise SystemExit(f"no scifact-test-*-{fingerprint} under {index_dir}: run training/eval_retrieval.py first")
    bio = index_dir / found[0].name.replace("scifact-test-", "bioasq-dev-", 1)
    if not bio.exists():
        raise SystemExit(f"{bio} is missing: run training/eval_retrieval.py for this encoder first")
    return EmbeddedIndex(found[0]), EmbeddedIndex(bio)


def ensemble(splits: Splits, index_dir: Path, members: dict[str, str]) -> dict[str, Any]:
    cos, first = {}, None
    for name, model in members.items():
        encoder = fast_encoder(model)
        sci, bio = _indexes(index_dir, encoder)
        first = first or splits.first_passes(sci, bio)
        cos[name] = splits.cosines(encoder, sci, bio, first)
    out = {}
    for r in range(1, len(members) + 1):
        for combo in itertools.combinations(members, r):
            mean = {
                s: {
                    q: {d: float(np.mean([cos[m][s][q][d] for m in combo])) for d in cos[combo[0]][s][q]}
                    for q in first[s]
                }
                for s in first
            }
            _, choices = splits.select(first, mean)
            out["+".join(combo)] = choices
            print("+".join(combo), json.dumps(choices), flush=True)
    return {"members": members, "runs": out}


def abstract_windows(title: str, abstract: str, words: int, overlap: int) -> list[str]:
    """Windows of ``words`` words of an abstract longer than that, ``overlap`` shared, each prefixed with the title:
    the index's body windows (:func:`~es_biomed.corpus.passages.split_passages`) cut from the abstract."""
    if len(abstract.split()) <= words:
        return []
    doc = Document(id="window", title=title, body=abstract)
    return split_passages(doc, PassageConfig(max_words=words, overlap=overlap))[1 if title else 0 :]


def windows(splits: Splits, index_dir: Path, model: str, words: int, overlap: int) -> dict[str, Any]:
    encoder = fast_encoder(model)
    sci, bio = _indexes(index_dir, encoder)
    first = splits.first_passes(sci, bio)
    base = splits.cosines(encoder, sci, bio, first)  # cosine + 1 of passage 0
    per_doc: dict[str, dict[str, np.ndarray]] = {}
    counts = {}
    for corpus_name, corpus in (("sci", splits.test.corpus), ("bio", splits.bio.corpus)):
        texts, owners = [], []
        for doc in corpus.values():
            for text in abstract_windows(doc.title, doc.abstract, words, overlap):
                texts.append(text)
                owners.append(doc.id)
        vecs = encoder.encode_documents(texts, batch_size=32) if texts else np.zeros((0, encoder.info.dims))
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        grouped: dict[str, list[np.ndarray]] = {}
        for owner, vec in zip(owners, vecs, strict=True):
            grouped.setdefault(owner, []).append(vec)
        per_doc[corpus_name] = {d: np.stack(v) for d, v in grouped.items()}
        counts[corpus_name] = {"documents_cut": len(grouped), "windows": len(texts), "documents": len(corpus)}
    cos = {}
    for s in first:
        mats = per_doc["bio" if s == "bio" else "sci"]
        queries = splits.queries(s)
        qv = dict(zip(queries, encoder.encode_queries(list(queries.values()), batch_size=64), strict=True))
        cos[s] = {}
        for q, scores in base[s].items():
            v = np.asarray(qv[q], dtype=np.float32)
            v = v / np.linalg.norm(v)
            cos[s][q] = {d: max(c, float(np.max(mats[d] @ v)) + 1.0) if d in mats else c for d, c in scores.items()}
    _, passage0 = splits.select(first, base)
    _, maxp = splits.select(first, cos)
    return {"encoder": model, "words": words, "overlap": overlap, "counts": counts, "passage0": passage0, "maxp": maxp}


def _normalized(x: np.ndarray, norm: str) -> np.ndarray:
    """Per-query normalization: Elasticsearch's ``minmax`` (the one ``rerank_ce`` blends with), or z-score."""
    if norm == "minmax":
        return np.asarray(minmax_normalize(x.tolist()), dtype=np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _fused(first: dict, cos: dict, window: int, alpha: float, norm: str, k: int) -> dict[str, dict[str, float]]:
    """Each query's top ``k``: the window re-sorted by the fused score, then BM25's order (a run of ranks)."""
    runs = {}
    for q, hits in first.items():
        top, rest = hits[:window], hits[window:k]
        order: list[str] = []
        if top:
            bm25 = np.array([s for _, s in top], dtype=np.float64)
            cosine = np.array([cos[q][d] for d, _ in top], dtype=np.float64)
            fused = alpha * _normalized(bm25, norm) + (1 - alpha) * _normalized(cosine, norm)
            order = [top[i][0] for i in np.argsort(-fused, kind="stable")]
        order += [d for d, _ in rest]
        runs[q] = {d: float(len(order) - r) for r, d in enumerate(order[:k])}
    return runs


def fusion(splits: Splits, index_dir: Path, members: dict[str, str]) -> dict[str, Any]:
    first = None
    out = {}
    for name, model in members.items():
        encoder = fast_encoder(model)
        sci, bio = _indexes(index_dir, encoder)
        first = first or splits.first_passes(sci, bio)
        cos = splits.cosines(encoder, sci, bio, first)
        grid = []
        for norm, window, alpha in itertools.product(NORMS, splits.windows, ALPHAS):
            run = _fused(first["dev"], cos["dev"], window, alpha, norm, 100)
            ndcg = evaluate(splits.dev_qrels, run, ["NDCG@10"])["NDCG@10"]
            grid.append({"norm": norm, "window_size": window, "alpha": alpha, "scifact_dev_ndcg10": ndcg})
        top = max(g["scifact_dev_ndcg10"] for g in grid)
        best = min(
            (g for g in grid if g["scifact_dev_ndcg10"] >= top - TIE),
            key=lambda g: (g["window_size"], -g["alpha"], g["norm"]),
        )
        norm, window, alpha = best["norm"], best["window_size"], best["alpha"]
        chosen = {
            **best,
            "scifact_test_ndcg10": evaluate(
                splits.test.qrels, _fused(first["test"], cos["test"], window, alpha, norm, 100), ["NDCG@10"]
            )["NDCG@10"],
            "bioasq_dev_mrr10": {
                f"k={k}": evaluate(
                    splits.bio.qrels,
                    _fused(first["bio"], cos["bio"], k, alpha, norm, k),
                    ["MRR@10"],
                    splits.bio.ignore,
                )["MRR@10"]
                for k in (20, 50)
            },
        }
        _, rescore = splits.select(first, cos)
        out[name] = {"model": model, "fusion": chosen, "rescore": rescore}
        print(name, json.dumps({"fusion": chosen, "rescore_tuned": rescore["tuned"]}), flush=True)
    return {"members": members, "runs": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variant", choices=["ensemble", "windows", "fusion"])
    ap.add_argument("data", type=Path, help="../shared/data")
    ap.add_argument("--index-dir", type=Path, default=Path("runs/eval-indexes"))
    ap.add_argument(
        "--member", action="append", default=[], help="ensemble, fusion: NAME=MODEL (a registered name or dir)"
    )
    ap.add_argument("--encoder", default="all-MiniLM-L6-v2", help="windows: the encoder")
    ap.add_argument("--words", type=int, default=128)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    splits = Splits(args.data)
    bad = [m for m in args.member if "=" not in m]
    if bad:
        ap.error(f"--member takes NAME=MODEL, got {bad[0]!r}")
    members = dict(m.split("=", 1) for m in args.member)
    if len(members) != len(args.member):
        ap.error("--member: each NAME once")
    if args.variant == "ensemble":
        if len(members) < 2:
            ap.error("ensemble needs two or more --member NAME=MODEL")
        result = ensemble(splits, args.index_dir, members)
    elif args.variant == "fusion":
        if not members:
            ap.error("fusion needs one or more --member NAME=MODEL")
        result = fusion(splits, args.index_dir, members)
    else:
        if not 0 <= args.overlap < args.words:
            ap.error(f"need 0 <= --overlap < --words, got {args.overlap}, {args.words}")
        result = windows(splits, args.index_dir, args.encoder, args.words, args.overlap)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"tuned_on": "SciFact dev claims (query-disjoint)", **result}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
