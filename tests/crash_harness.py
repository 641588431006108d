"""Crash-test harness for the embedded engine (issue 21): SIGKILL the indexer at random moments, reopen, check.

The indexer runs in a subprocess (:func:`_indexer`, this file run with ``--index``) through
:func:`es_biomed.ingest.index_documents`, the function ``es-biomed index`` calls, committing every batch. It appends
one line to an acknowledgement file, fsynced, after each committed batch (``{"ids": [...]}``) and one before it
starts a batch, so the harness knows what was acknowledged and what was in flight when the kill came.

After every kill the harness reopens the index the way the next process does and checks:

* it opens (recovering an interrupted commit) and :func:`~es_biomed.backends.embedded.maintenance.check_index`
  passes: BM25 and the document table hold the same ids, none twice, every vector row committed and unit length;
* nothing acknowledged is lost, and what is committed beyond it is at most the batch in flight;
* every committed document carries its own vectors: each passage block equals a fresh encoding of the document
  within the encoder's tolerance (references computed once, in this process, with the same document encoder).

A reader process searches in a loop for the whole run (BM25, rerank and dense, refreshing to each commit) and
must see no error. At the end an uninterrupted run completes the index, whose id set must equal the input's.

Run from the repository root: ``python -m tests.crash_harness --kills 50 --out runs/crash/harness.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CORD19 = REPO.parent / "shared" / "data" / "cord19" / "merged_dedup_cord_uid.jsonl"
#: The document encoder's tolerance against a re-encoding in other batches (bf16 padding differences: ~1e-3).
VECTOR_TOLERANCE = 5e-3

_READER = r"""
import json, signal, sys, time, traceback
import numpy as np
from es_biomed.backends import EmbeddedIndex
from es_biomed.query import SearchPlan
path, out, dims = sys.argv[1], sys.argv[2], int(sys.argv[3])
stop = False
def _stop(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, _stop)
q = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
q /= np.linalg.norm(q)
stats = {"searches": 0, "errors": [], "max_docs_seen": 0, "reloads": 0}
idx = None
while not stop:
    try:
        if idx is None:
            try:
                idx = EmbeddedIndex(path)
            except Exception as exc:
                if "no es-biomed index" in str(exc):  # not created yet
                    time.sleep(0.05)
                    continue
                raise
        stats["reloads"] += idx.refresh(min_interval=0.2)
        for mode in ("bm25", "rerank", "dense"):
            idx.search(SearchPlan("coronavirus infection", mode=mode, k=10), None if mode == "bm25" else q,
                       with_sources=True)
            stats["searches"] += 1
        stats["max_docs_seen"] = max(stats["max_docs_seen"], len(idx))
        time.sleep(0.01)  # a steady query load, not a busy loop that starves the indexer of the 2 cores
    except Exception:
        stats["errors"].append(traceback.format_exc(limit=3))
        time.sleep(0.05)
json.dump(stats, open(out, "w"))
"""


def load_corpus(limit: int | None) -> list[Any]:
    from es_biomed.corpus.readers import iter_documents

    docs = []
    for doc in iter_documents(str(CORD19)):
        docs.append(doc)
        if limit is not None and len(docs) == limit:
            break
    return docs


def _indexer(corpus: str, index: str, acks: str, batch_size: int) -> None:
    """The process that gets killed: index ``corpus`` committing every batch, acknowledging each commit."""
    from es_biomed.corpus.readers import iter_documents
    from es_biomed.encode.loading import load_document_encoder
    from es_biomed.ingest import index_documents

    fh = open(acks, "a")

    def ack(kind: str, ids: Any) -> None:
        fh.write(json.dumps({kind: ids}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())

    ack("run", os.getpid())
    enc = load_document_encoder("all-MiniLM-L6-v2")

    def docs():  # announces each batch before it is embedded (the batch in flight)
        batch = []
        for doc in iter_documents(corpus):
            batch.append(doc)
            if len(batch) == batch_size:
                ack("start", [d.id for d in batch])
                yield from batch
                batch = []
        if batch:
            ack("start", [d.id for d in batch])
            yield from batch

    index_documents(
        docs(), index, enc, batch_size=batch_size, on_batch=lambda report, batch: ack("ids", [d.id for d in batch])
    )


def _acks(path: Path) -> tuple[set[str], list[list[str]]]:
    """(acknowledged ids, the last batch each run started) from an acknowledgement file (a torn line is ignored).

    A run can have committed its last started batch without acknowledging it (killed between the two), never more.
    """
    done: set[str] = set()
    last_started: list[list[str]] = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if "run" in rec:
                last_started.append([])
            elif "ids" in rec:
                done.update(rec["ids"])
            elif last_started:
                last_started[-1] = rec["start"]
    return done, last_started


def run(
    workdir: Path,
    kills: int = 20,
    seed: int = 0,
    limit: int | None = 1000,
    batch_size: int = 64,
    max_delay: float = 6.0,
) -> dict[str, Any]:
    """Run the harness in ``workdir``; returns its figures (and raises AssertionError on a broken invariant)."""
    from es_biomed.backends import EmbeddedIndex
    from es_biomed.backends.embedded.maintenance import check_index
    from es_biomed.corpus.passages import PassageConfig, embed_passages
    from es_biomed.encode.loading import load_document_encoder

    workdir.mkdir(parents=True, exist_ok=True)
    corpus = workdir / "corpus.jsonl"
    docs = load_corpus(limit)
    with open(corpus, "w") as fh:
        for d in docs:
            fh.write(
                json.dumps({"_id": d.id, "title": d.title, "text": d.abstract, **({"date": d.date} if d.date else {})})
                + "\n"
            )
    input_ids = {d.id for d in docs}
    index, acks = workdir / "ix", workdir / "acks-0.jsonl"
    enc = load_document_encoder("all-MiniLM-L6-v2")
    t0 = time.perf_counter()
    _, blocks = embed_passages(docs, enc, PassageConfig(), 32)
    reference = {d.id: b for d, b in zip(docs, blocks, strict=True)}
    reference_seconds = time.perf_counter() - t0
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    reader_out = workdir / "reader.json"
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(index), str(reader_out), str(enc.dims)], env=env, cwd=REPO
    )
    rng = random.Random(seed)
    per_kill = []
    cycle = 0
    runs = 0

    def command() -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "--index", str(corpus), str(index), str(acks),
                str(batch_size)]  # fmt: skip

    try:
        while sum(1 for p in per_kill if not p["finished"]) < kills and runs < 4 * kills:
            runs += 1
            proc = subprocess.Popen(command(), env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            delay = rng.uniform(0.3, max_delay)
            try:
                proc.wait(delay)
                finished = True
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                finished = False
            if finished and proc.returncode != 0:
                raise AssertionError(f"indexer failed: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            per_kill.append(_after_kill(index, acks, reference, input_ids, finished, delay))
            if finished:  # a fast machine filled the index before the kills ran out: empty it and go on
                cycle += 1
                _empty(index)
                acks = workdir / f"acks-{cycle}.jsonl"
        t_final = time.perf_counter()
        final = subprocess.run(command(), env=env, cwd=REPO, capture_output=True, text=True)
        assert final.returncode == 0, final.stderr[-2000:]
        final_seconds = time.perf_counter() - t_final
    finally:
        reader.send_signal(signal.SIGTERM)
        reader.wait(60)
    idx = EmbeddedIndex(index)
    assert set(idx.doc_ids()) == input_ids and len(idx) == len(input_ids)
    report = check_index(index)
    assert report.ok, report.to_dict()
    _check_vectors(idx, reference)
    reader_stats = json.loads(reader_out.read_text())
    killed = [p for p in per_kill if not p["finished"]]
    return {
        "corpus": str(CORD19.relative_to(REPO.parent)),
        "documents": len(docs),
        "batch_size": batch_size,
        "seed": seed,
        "kills": len(killed),
        "fill_cycles": cycle + 1,
        "kills_before_first_commit": sum(1 for p in killed if p["committed"] == 0),
        "invariant_checks": len(per_kill) * 6 + 6,
        "lost_docs_per_kill_max": max((p["in_flight_lost"] for p in killed), default=0),
        "lost_batches_per_kill_max": max((p["batches_lost"] for p in killed), default=0),
        "recovery_seconds_max": max((p["open_seconds"] for p in per_kill), default=0.0),
        "recovery_seconds_median": float(np.median([p["open_seconds"] for p in per_kill])) if per_kill else 0.0,
        "replayed_commits": sum(1 for p in per_kill if p["replayed_ops"]),
        "final_run_seconds": round(final_seconds, 2),
        "reference_seconds": round(reference_seconds, 2),
        "reader": {k: v for k, v in reader_stats.items() if k != "errors"} | {"errors": len(reader_stats["errors"])},
        "reader_errors": reader_stats["errors"][:3],
        "per_kill": per_kill,
    }


def _empty(index: Path) -> None:
    """Delete every document through the writer (a commit readers see; the dead rows compact at close)."""
    from es_biomed.backends import EmbeddedIndex

    idx = EmbeddedIndex(index)
    with idx.writer() as w:
        w.delete(idx.doc_ids())


def _check_vectors(idx: Any, reference: dict[str, np.ndarray]) -> None:
    v = idx.view_of_commit()
    for i, doc_id in enumerate(v.docs.ids):
        start, count = int(v.docs.row_start[i]), int(v.docs.row_count[i])
        got = np.asarray(v.vectors[start : start + count])
        want = reference[doc_id]
        assert got.shape == want.shape, (doc_id, got.shape, want.shape)
        diff = float(np.abs(got - want).max()) if count else 0.0
        assert diff <= VECTOR_TOLERANCE, f"{doc_id}: its vectors differ from a fresh encoding by {diff:.2e}"


def _after_kill(
    index: Path, acks: Path, reference: dict[str, np.ndarray], input_ids: set[str], finished: bool, delay: float
) -> dict[str, Any]:
    from es_biomed.backends import EmbeddedIndex
    from es_biomed.backends.embedded.maintenance import check_index

    acked, last_started = _acks(acks)
    if not (index / "es_biomed.json").exists():
        assert not acked
        return {
            "finished": finished,
            "delay": round(delay, 2),
            "committed": 0,
            "in_flight_lost": 0,
            "batches_lost": 0,
            "open_seconds": 0.0,
            "replayed_ops": 0,
        }
    t0 = time.perf_counter()
    idx = EmbeddedIndex(index)  # the next process: recovers an abandoned commit
    open_seconds = time.perf_counter() - t0
    committed = set(idx.doc_ids())
    assert len(committed) == len(idx.doc_ids())  # no id twice in the document table
    assert committed <= input_ids
    assert acked <= committed, f"acknowledged but lost: {sorted(acked - committed)[:5]}"  # nothing acknowledged lost
    unacked_allowed = set().union(*map(set, last_started)) if last_started else set()
    assert committed - acked <= unacked_allowed, "committed documents beyond the batches in flight"
    in_flight = set(last_started[-1]) if last_started else set()
    report = check_index(index)
    assert report.ok, report.to_dict()
    _check_vectors(idx, reference)
    lost = (in_flight - committed) if not finished else set()
    return {
        "finished": finished,
        "delay": round(delay, 2),
        "committed": len(committed),
        "acknowledged": len(acked),
        "in_flight_lost": len(lost),
        "batches_lost": int(bool(lost)),
        "open_seconds": round(open_seconds, 4),
        "replayed_ops": idx.recovery.replayed_ops if idx.recovery else 0,
        "truncated_rows": idx.recovery.truncated_rows if idx.recovery else 0,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="First N CORD-19 records (default: all 3,303).")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-delay", type=float, default=6.0)
    ap.add_argument("--workdir", type=Path, default=Path("runs/crash/work"))
    ap.add_argument("--out", type=Path, default=Path("runs/crash/harness.json"))
    args = ap.parse_args(argv)
    import shutil

    shutil.rmtree(args.workdir, ignore_errors=True)
    res = run(args.workdir, args.kills, args.seed, args.limit, args.batch_size, args.max_delay)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if k != "per_kill"}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--index":
        _indexer(*sys.argv[2:5], int(sys.argv[5]))
    else:
        main()
