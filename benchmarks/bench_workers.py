"""Celery ingest throughput with 1 and 2 embedding worker processes on the CORD-19 sample.

Starts a private redis-server and, per run, ``celery -A workers.app worker -Q es-biomed -c N`` plus the single
embedded-engine writer (``-Q es-biomed-write -c 1``), submits ``../shared/data/cord19`` to a fresh index, waits,
and reads the throughput from the job status (documents written / time from the first batch start to the last
batch end), plus where the time went (per-batch embed and write seconds from the workers' task results).

    .venv/bin/python benchmarks/bench_workers.py [--limit N] [--batch-size 32]

Each worker process uses one compute thread (``ES_BIOMED_WORKER_THREADS=1``, the workers' default): scale with
processes, one per core. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import save  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

CORD19 = REPO.parent / "shared" / "data" / "cord19" / "merged_dedup_cord_uid.jsonl"


def start_worker(env: dict[str, str], queue: str, concurrency: int, name: str, log: Path) -> subprocess.Popen[bytes]:
    args = [
        sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", queue, "-c", str(concurrency),
        "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
    ]  # fmt: skip
    with open(log, "ab") as fh:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(workers: int, corpus: Path, batch_size: int, tmp: Path, threads: int = 1) -> dict[str, object]:
    from es_biomed.ingest.jobs import Target, batch_task_ids, job_status, submit_job
    from es_biomed.ingest.queue import QUEUE, WRITE_QUEUE, make_app

    redis = RedisServer(tmp / f"redis-{workers}").start()
    env = {
        **os.environ,
        "BROKER_URL": redis.url,
        "USE_TF": "0",
        "PYTHONPATH": str(REPO),
        "ES_BIOMED_PRELOAD_ENCODER": "all-MiniLM-L6-v2",  # model load stays out of the measured span
        "ES_BIOMED_WORKER_THREADS": str(threads),
    }
    procs = []
    try:
        procs.append(start_worker(env, QUEUE, workers, f"embed{workers}", tmp / f"embed-{workers}.log"))
        procs.append(start_worker(env, WRITE_QUEUE, 1, f"writer{workers}", tmp / f"writer-{workers}.log"))
        app = make_app(env)
        index = tmp / f"ix-{workers}"
        t0 = time.time()
        job = submit_job(app, str(corpus), Target("local", str(index), "all-MiniLM-L6-v2"), batch_size=batch_size)
        while not (st := job_status(app, job.id)).finished:
            time.sleep(1)
        wall = time.time() - t0
        results = [app.backend.get_task_meta(batch_task_ids(job, r.n)[1])["result"] for r in job.batches]
        embed_s = sum(r["embed_s"] for r in results)
        write_s = sum(r["write_s"] for r in results)
        span = max(r["finished"] for r in results) - min(r["started"] for r in results)
        return {
            "workers": workers,
            "threads_per_worker": threads,
            "batches": st.batches,
            "failed": st.failed,
            "documents": st.documents,
            "docs_per_s": st.docs_per_s,
            "wall_s_from_submit": round(wall, 1),
            "span_s": round(span, 1),
            # where the time went: busy seconds of the embedding processes and of the single writer
            "embed_busy_s": round(embed_s, 1),
            "write_busy_s": round(write_s, 1),
            "embed_utilisation": round(embed_s / (workers * span), 3),
            "writer_utilisation": round(write_s / span, 3),
        }
    finally:
        for p in procs:
            stop(p)
        redis.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORD19)
    ap.add_argument("--limit", type=int, default=0, help="Use only the first N records (0: all).")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=1, help="Compute threads per worker process.")
    ap.add_argument("--name", default="bench_workers", help="Result file name in benchmarks/results/.")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    try:
        corpus = args.corpus
        if args.limit:
            corpus = tmp / "corpus.jsonl"
            with open(args.corpus, "rb") as src, open(corpus, "wb") as dst:
                for i, line in enumerate(src):
                    if i >= args.limit:
                        break
                    dst.write(line)
        runs = [run(n, corpus, args.batch_size, tmp, args.threads) for n in args.workers]
        base = runs[0]["docs_per_s"]
        for r in runs:
            r["speedup"] = round(r["docs_per_s"] / base, 2) if base and r["docs_per_s"] else None  # type: ignore[operator]
            print(json.dumps(r))
        out = save(
            args.name,
            {"corpus": str(args.corpus), "limit": args.limit, "batch_size": args.batch_size, "runs": runs},
        )
        print(f"saved {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
