"""Ingest throughput into a real 3-node OpenSearch cluster (3 shards, 1 replica) against the embedded engine, in one
run, on the CORD-19 sample (3,303 abstracts) with the default document encoder (issue 22).

* ``embedded``: ``index_documents`` in this process (read, embed, commit per batch);
* ``cluster, N worker(s)``: Celery workers on a real Redis (one process each, one compute thread), batches of 64,
  each worker embedding and bulk-writing through the cluster backend; the embedding and bulk seconds of every batch
  are summed from the tasks' results;
* ``cluster, vectors precomputed``: the same documents bulk-written from vectors embedded beforehand (a memo
  encoder), in this process: the engine's own ceiling.

Needs the cluster (``tests/engines/opensearch/cluster.sh start``; its URLs in ``OPENSEARCH_CLUSTER_URLS``) and
``redis-server`` (installed from Debian when missing, as the tests do).

OPENSEARCH_CLUSTER_URLS=$(tests/engines/opensearch/cluster.sh start | tail -1) \\
    .venv/bin/python benchmarks/bench_cluster_ingest.py [--workers 1,2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import save

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CORD19 = REPO.parent / "shared" / "data" / "cord19" / "merged_dedup_cord_uid.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    urls = os.environ.get("OPENSEARCH_CLUSTER_URLS")
    if not urls:
        sys.exit("set OPENSEARCH_CLUSTER_URLS (tests/engines/opensearch/cluster.sh start prints it)")

    from es_biomed.backends.cluster import ClusterBackend, ClusterConfig
    from es_biomed.corpus.readers import iter_documents
    from es_biomed.encode.cpu import cpu_summary
    from es_biomed.encode.loading import load_document_encoder
    from es_biomed.encode.memo import CachedEncoder
    from es_biomed.ingest import index_documents
    from es_biomed.ingest.jobs import Target, job_status, submit_job
    from es_biomed.ingest.queue import QUEUE, make_app
    from tests.celery_workers import Worker, wait_for
    from tests.redis_server import RedisServer

    docs = list(iter_documents(str(CORD19)))
    enc = load_document_encoder("all-MiniLM-L6-v2")
    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    results: dict[str, dict[str, float]] = {}

    t0 = time.perf_counter()
    index_documents(docs, tmp / "embedded", enc, batch_size=args.batch_size)
    secs = time.perf_counter() - t0
    results["embedded engine, this process"] = {"seconds": round(secs, 1), "docs_per_s": round(len(docs) / secs, 1)}
    print(results, flush=True)

    def backend() -> ClusterBackend:
        cfg = ClusterConfig(urls, engine="opensearch", alias=f"es-biomed-bench-{uuid.uuid4().hex[:6]}")
        be = ClusterBackend.connect(cfg)
        be.setup(enc.info, shards=3, replicas=1)
        return be

    redis = RedisServer(tmp / "redis").start()
    env = {**os.environ, "BROKER_URL": redis.url, "USE_TF": "0", "PYTHONPATH": str(REPO), "OPENSEARCH_URL": urls}
    try:
        for n in [int(x) for x in args.workers.split(",")]:
            app = make_app(env)
            be = backend()
            workers = [Worker(env, QUEUE, f"b{n}-{i}", tmp).start() for i in range(n)]
            try:
                time.sleep(8)  # the workers load the encoder before the clock starts
                t0 = time.perf_counter()
                job = submit_job(app, str(CORD19), Target("opensearch", be.alias, "all-MiniLM-L6-v2"),
                                 batch_size=args.batch_size)  # fmt: skip
                st = wait_for(lambda job=job, app=app: (s := job_status(app, job.id)).finished and s, 1800, "the job")
                secs = time.perf_counter() - t0
                metas = [app.AsyncResult(f"{job.id}:{r.n:05d}").result for r in job.batches]
                embed = sum(float(m.get("embed_s") or 0) for m in metas if isinstance(m, dict))
                bulk = sum(float(m.get("bulk_s") or 0) for m in metas if isinstance(m, dict))
                assert st.failed == 0 and st.documents == len(docs), st
                results[f"cluster, {n} worker process(es)"] = {
                    "seconds": round(secs, 1),
                    "docs_per_s": round(len(docs) / secs, 1),
                    "embed_s_summed": round(embed, 1),
                    "bulk_s_summed": round(bulk, 1),
                }
                print(results, flush=True)
            finally:
                for w in workers:
                    w.stop()
                be.drop()
    finally:
        redis.stop()

    memo = CachedEncoder(enc)
    memo.encode_documents([d.text for d in docs])  # the titles and abstracts: one passage each
    be = backend()
    try:
        report = be.index_documents(docs, memo, batch_size=args.batch_size)
        results["cluster, vectors precomputed (engine ceiling)"] = {
            "seconds": round(report.seconds, 1),
            "docs_per_s": round(len(docs) / report.seconds, 1),
            "embed_s_summed": round(report.embed_seconds, 1),
            "bulk_s_summed": round(report.bulk_seconds, 1),
        }
    finally:
        be.drop()
    shutil.rmtree(tmp, ignore_errors=True)
    out = {"documents": len(docs), "batch_size": args.batch_size, "nodes": urls.count(",") + 1, "cpu": cpu_summary(),
           "results": results}  # fmt: skip
    print(out)
    print(save("bench_cluster_ingest", out))


if __name__ == "__main__":
    main()
