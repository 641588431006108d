"""Indexing speed with per-batch commits against one commit at the end (issue 21), in one run.

The whole CORD-19 sample (3,303 abstracts) is indexed into a fresh embedded index with the default document
encoder, ``--rounds`` times per policy, the policies interleaved (so a neighbouring process slows both alike):

* ``per-batch``: the default, an atomic commit after every batch of ``--batch-size`` documents;
* ``at-close``: one commit at the end (the writer before issue 21).

Also the write path alone, with the vectors embedded once beforehand (upsert + commits only), where the commit
cost is not hidden behind the encoder.

.venv/bin/python benchmarks/bench_commit.py [--rounds 3] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _common import save

from es_biomed.backends import EmbeddedIndex
from es_biomed.corpus.passages import PassageConfig, embed_passages
from es_biomed.corpus.readers import iter_documents
from es_biomed.encode.cpu import cpu_summary
from es_biomed.encode.loading import load_document_encoder
from es_biomed.ingest import index_documents

CORD19 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cord19" / "merged_dedup_cord_uid.jsonl"
POLICIES = {"per-batch": {}, "at-close": {"commit_every": 10**9}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--name", default="bench_commit")
    args = ap.parse_args()
    docs = list(iter_documents(str(CORD19)))
    enc = load_document_encoder("all-MiniLM-L6-v2")
    root = Path(tempfile.mkdtemp(prefix="bench-commit-"))
    full: dict[str, list[float]] = {p: [] for p in POLICIES}
    commits: dict[str, int] = {}
    for r in range(args.rounds):
        for policy, kw in POLICIES.items():
            path = root / f"{policy}-{r}"
            t0 = time.perf_counter()
            index_documents(docs, path, enc, batch_size=args.batch_size, **kw)  # type: ignore[arg-type]
            full[policy].append(time.perf_counter() - t0)
            commits[policy] = EmbeddedIndex(path).commit_seq
            shutil.rmtree(path)
            print(policy, round(full[policy][-1], 2), "s", flush=True)
    _, blocks = embed_passages(docs, enc, PassageConfig(), 32)
    write: dict[str, list[float]] = {p: [] for p in POLICIES}
    for r in range(args.rounds):
        for policy in POLICIES:
            path = root / f"w-{policy}-{r}"
            idx = EmbeddedIndex.create(path, enc.info)
            t0 = time.perf_counter()
            with idx.writer(auto_compact=None) as w:
                for i in range(0, len(docs), args.batch_size):
                    w.upsert(docs[i : i + args.batch_size], blocks[i : i + args.batch_size])
                    if policy == "per-batch":
                        w.commit()
            write[policy].append(time.perf_counter() - t0)
            shutil.rmtree(path)
    shutil.rmtree(root, ignore_errors=True)
    med = {p: statistics.median(v) for p, v in full.items()}
    wmed = {p: statistics.median(v) for p, v in write.items()}
    result = {
        "documents": len(docs),
        "batch_size": args.batch_size,
        "encoder": enc.info.name,
        "precision": getattr(enc, "precision", "fp32"),
        "cpu": cpu_summary(),
        "rounds": args.rounds,
        "index_seconds": full,
        "index_seconds_median": med,
        "docs_per_second": {p: round(len(docs) / s, 1) for p, s in med.items()},
        "slowdown_per_batch_vs_at_close": round(med["per-batch"] / med["at-close"] - 1, 4),
        "commits": commits,
        "write_only_seconds": write,
        "write_only_seconds_median": wmed,
        "write_only_slowdown": round(wmed["per-batch"] / wmed["at-close"] - 1, 4),
    }
    save(args.name, result)
    print({k: result[k] for k in ("docs_per_second", "slowdown_per_batch_vs_at_close", "write_only_seconds_median")})


if __name__ == "__main__":
    main()
