"""Re-tune the cosine rescore's window and weight per encoder, on dev splits only, then score SciFact test once.

The default preset (``es_biomed/query/presets.json``) was tuned for all-MiniLM-L6-v2 on all SciFact train
claims. A stronger or fine-tuned encoder may want a larger cosine weight. This script reuses the evaluation
indexes that ``training/eval_retrieval.py`` built (SciFact corpus and BioASQ dev contexts, one per encoder),
scores a grid of ``window_size`` x ``rescore_query_weight`` (``score_mode: total``) on the SciFact dev claims
(query-disjoint, held out of every training run), picks the best (ties within 0.0005: the smaller window, then
the smaller weight), and reports for that choice and for the default preset:

* SciFact dev NDCG@10 (the selection set), SciFact test NDCG@10 (scored once, never used to choose);
* BioASQ dev MRR@10 at k = 20 and 50 (the paper's protocol on the held-out 7b questions; window = k).

    .venv/bin/python training/tune_rescore.py ../shared/data --index-dir runs/eval-indexes \\
        --output training/results/rescore_tuning.json

``--windows`` / ``--weights`` replace the grid (the wider one the README reports: ``--windows 20 30 50 100 200 300
--weights 1 2 5 10 20 30 50 75 100 150 200 300 500 1000``; BM25 is read to the largest window).

Needs the indexes (``training/eval_retrieval.py`` makes them). Nothing here changes the shipped preset.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.corpus.bioasq import DEFAULT_DEV_FRACTION, load_bioasq, load_bioasq_split, split_by_question
from es_biomed.corpus.readers import load_beir
from es_biomed.eval.metrics import evaluate
from es_biomed.query.plan import apply_rescore
from es_biomed.query.presets import default_plan
from es_biomed.train.data.sources import scifact_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_retrieval import fast_encoder  # noqa: E402

WINDOWS = (20, 30, 50, 100)
WEIGHTS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0, 1000.0)
TIE = 0.0005


def _first_pass(index: EmbeddedIndex, queries: dict[str, str], depth: int) -> dict[str, list[tuple[str, float]]]:
    plan = default_plan(k=depth)
    return {q: [(h.doc_id, h.score) for h in index.bm25(plan.replace(query=t), depth)] for q, t in queries.items()}


def _rescored(first: dict, cos: dict, window: int, weight: float, k: int) -> dict[str, dict[str, float]]:
    plan = default_plan(window_size=window, rescore_query_weight=weight, score_mode="total", k=k)
    return {q: dict(apply_rescore(first[q][: max(window, k)], cos[q], plan)[:k]) for q in first}


def _cosines(index: EmbeddedIndex, encoder: Any, queries: dict[str, str], first: dict) -> dict:
    qids = list(queries)
    vecs = encoder.encode_queries([queries[q] for q in qids], batch_size=64)
    return {
        q: {d: c + 1.0 for d, c in index.vector_scores(v, [d for d, _ in first[q]]).items()}
        for q, v in zip(qids, vecs, strict=True)
    }


class Splits:
    """The selection and report sets: SciFact dev claims (query-disjoint), SciFact test, BioASQ 7b dev questions."""

    def __init__(self, data: Path, windows: tuple[int, ...] = WINDOWS, weights: tuple[float, ...] = WEIGHTS) -> None:
        self.windows, self.weights = tuple(windows), tuple(weights)
        train = load_beir(data / "scifact", "train")
        self.test = load_beir(data / "scifact", "test")
        _, dev_ids = scifact_split(data / "scifact")
        self.dev_q = {q: train.queries[q] for q in dev_ids if q in train.queries}
        self.dev_qrels = {q: train.qrels[q] for q in self.dev_q}
        bio_files = sorted((data / "bioasq").glob("BioASQ-train-factoid-7b.json"))
        _, bio_dev = split_by_question(load_bioasq(bio_files, None).queries, DEFAULT_DEV_FRACTION)
        self.bio = load_bioasq_split(bio_files, bio_dev)
        self.bio_depth = 50 + max((len(v) for v in self.bio.ignore.values()), default=0)

    def first_passes(self, sci: EmbeddedIndex, bio: EmbeddedIndex) -> dict[str, dict]:
        """BM25 per split (the same for every encoder): ``dev``, ``test`` (top 100, or the largest window) and
        ``bio``."""
        return {
            "dev": _first_pass(sci, self.dev_q, max(max(self.windows), 100)),
            "test": _first_pass(sci, self.test.queries, max(max(self.windows), 100)),
            "bio": _first_pass(bio, self.bio.queries, self.bio_depth),
        }

    def queries(self, split: str) -> dict[str, str]:
        return {"dev": self.dev_q, "test": self.test.queries, "bio": self.bio.queries}[split]

    def cosines(self, encoder: Any, sci: EmbeddedIndex, bio: EmbeddedIndex, first: dict) -> dict[str, dict]:
        """``cosine + 1`` of every first-pass hit, per split (``bio`` from the BioASQ index, the rest from SciFact's)."""
        return {s: _cosines(bio if s == "bio" else sci, encoder, self.queries(s), first[s]) for s in first}

    def score(self, first: dict, cos: dict, window: int, weight: float) -> dict[str, Any]:
        """SciFact dev and test NDCG@10 at (window, weight); BioASQ dev MRR@10 at k = window = 20 and 50."""
        return {
            "window_size": window,
            "rescore_query_weight": weight,
            "scifact_dev_ndcg10": evaluate(
                self.dev_qrels, _rescored(first["dev"], cos["dev"], window, weight, 100), ["NDCG@10"]
            )["NDCG@10"],
            "scifact_test_ndcg10": evaluate(
                self.test.qrels, _rescored(first["test"], cos["test"], window, weight, 100), ["NDCG@10"]
            )["NDCG@10"],
            "bioasq_dev_mrr10": {
                f"k={k}": evaluate(
                    self.bio.qrels, _rescored(first["bio"], cos["bio"], k, weight, k), ["MRR@10"], self.bio.ignore
                )["MRR@10"]
                for k in (20, 50)
            },
        }

    def select(self, first: dict, cos: dict) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """The dev grid, and the default preset's and the dev-best choice's scores (SciFact test never chooses)."""
        grid = []
        for window, weight in itertools.product(self.windows, self.weights):
            run = _rescored(first["dev"], cos["dev"], window, weight, 100)
            ndcg = evaluate(self.dev_qrels, run, ["NDCG@10"])["NDCG@10"]
            grid.append({"window_size": window, "rescore_query_weight": weight, "scifact_dev_ndcg10": ndcg})
        top = max(g["scifact_dev_ndcg10"] for g in grid)
        best = min(
            (g for g in grid if g["scifact_dev_ndcg10"] >= top - TIE),
            key=lambda g: (g["window_size"], g["rescore_query_weight"]),
        )
        preset = default_plan()
        return grid, {
            "default": self.score(first, cos, preset.window_size, preset.rescore_query_weight),
            "tuned": self.score(first, cos, best["window_size"], best["rescore_query_weight"]),
        }


def tune(name: str, splits: Splits, sci_index: Path, bio_index: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    sci = EmbeddedIndex(sci_index)
    encoder = fast_encoder(sci.encoder_info["name"].removesuffix("-bf16"))
    bidx = EmbeddedIndex(bio_index)
    first = splits.first_passes(sci, bidx)
    cos = splits.cosines(encoder, sci, bidx, first)
    grid, choices = splits.select(first, cos)
    out: dict[str, Any] = {"encoder": sci.encoder_info["name"], "grid": grid, **choices}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"{name}: {json.dumps({k: out[k] for k in ('default', 'tuned')})}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="../shared/data")
    ap.add_argument("--index-dir", type=Path, default=Path("runs/eval-indexes"))
    ap.add_argument("--output", type=Path, required=True)
    ap.add_argument("--windows", type=int, nargs="+", default=list(WINDOWS), help="window_size grid")
    ap.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS), help="rescore_query_weight grid")
    args = ap.parse_args(argv)
    if min(args.windows) < 1 or min(args.weights) <= 0:
        ap.error("--windows must be >= 1 and --weights > 0")
    splits = Splits(args.data, tuple(sorted(set(args.windows))), tuple(sorted(set(args.weights))))
    results = {}
    for sci_index in sorted(args.index_dir.glob("scifact-test-*")):
        suffix = sci_index.name.removeprefix("scifact-test-")
        bio_index = args.index_dir / f"bioasq-dev-{suffix}"
        if not bio_index.exists():
            raise SystemExit(f"{bio_index} is missing: run training/eval_retrieval.py for this encoder first")
        results[suffix] = tune(suffix, splits, sci_index, bio_index)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "tuned_on": "SciFact dev claims (query-disjoint)",
                "grid": {"window_size": list(splits.windows), "rescore_query_weight": list(splits.weights)},
                "runs": results,
            },
            indent=1,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
