"""OpenSearch at scale against the embedded engine: the same generated documents, the same real queries (issue 23,
item 4).

    .venv/bin/python benchmarks/bench_scale_cluster.py --gen /work/scale/gen-1m --sizes 10000,100000 \
        [--queries 200] [--heap 4g] [--quantisation sq7|float] [--work DIR] \
        [--out benchmarks/results/scale_cluster.json]

For each size N (the first N documents of ``benchmarks/gen_corpus.py``'s output, with their precomputed vectors):

* **embedded**: the index is built and searched in child processes by ``bench_scale.py``'s own ``build`` and
  ``search`` (build rate, disk, p50/p99 per mode, ANN recall), and a third child lists each query's exact top 10
  (``vector_search="exact"``): the reference for the cluster's kNN recall. No OpenSearch node runs meanwhile.
* **opensearch**: one single node is started from the Maven Central jars (``tests/engines/opensearch/node.sh``, in
  a state directory of its own under ``--work``, heap ``--heap``), the documents are bulk-written through the cluster
  backend's ``index_documents`` with the precomputed vectors (an encoder that looks each passage's vector up and never
  runs a model; its identity is the real encoder's; reading the corpus is not timed, the final refresh is), the
  merges the ingest left are waited for, then every mode is timed per query through the
  :class:`~es_biomed.search.Searcher`, the modes interleaved (:func:`time_modes`; ``bench_scale.search`` times the
  embedded modes one after the other): ``bm25``, ``rerank_w100`` (BM25 + the in-cluster ``rescore`` with the
  Painless ``cosineSimilarity`` script over the best passage, window 100), ``dense`` (the k-NN plugin's nested
  ``knn`` query, Lucene HNSW) and ``hybrid`` (the backend's client-side RRF of an in-cluster BM25 and an in-cluster
  kNN search: OpenSearch's own hybrid query needs the neural-search plugin, which the node does not have); then the
  recall@10 of its ``dense`` against the embedded exact top 10, the index's size (``_cat/indices``, ``_stats``), the
  JVM heap and the node's peak RSS. The node is stopped after each size, also on failure or SIGTERM; its state directory (data,
  ``node.log``) is deleted after a size that succeeded (kept with ``--keep``, and after a failure).

Query encoding is excluded from every latency: the queries (SciFact test claims, then BioASQ questions:
``bench_scale.real_queries``) are encoded once, first. OpenSearch latencies are what the Python client sees (HTTP and
JSON included), on the same machine as the node; ``server_took_*`` is the part the node reports (``took``, summed over
the two searches of a ``hybrid``).

Vector quantisation: the project's OpenSearch mapping is float HNSW on the Lucene engine (its dialect ignores
``index_options["type"]``). The node's k-NN plugin has no native libraries (Maven Central ships none), so faiss and
``mode: on_disk`` (faiss by default) are unavailable; ``--quantisation sq7`` (default) adds the Lucene scalar
quantizer (``encoder: sq``, 7 bits, 4x smaller vectors in the graph search; float vectors kept for the rescore) to
the two ``knn_vector`` fields of the template the backend installs. ``float`` keeps the project's mapping as it is.
The mapping the index really has is read back into the results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS_DIR, machine  # noqa: E402
from bench_scale import BATCH, build, real_queries, run_child, search  # noqa: E402

from es_biomed.backends.opensearch import OpenSearchBackend  # noqa: E402
from es_biomed.encode.base import Encoder, EncoderInfo  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NODE_SH = REPO / "tests" / "engines" / "opensearch" / "node.sh"
ALIAS = "es-biomed-scale"
#: The ``method.parameters.encoder`` each ``--quantisation`` adds to the Lucene HNSW mapping (None: float vectors).
QUANTISATION: dict[str, dict[str, Any] | None] = {
    "sq7": {"name": "sq", "parameters": {"bits": 7}},
    "float": None,
}
#: The modes timed on OpenSearch (the embedded search child times these and ``dense_exact``).
PLANS: dict[str, dict[str, Any]] = {
    "bm25": {"mode": "bm25", "k": 10},
    "rerank_w100": {"mode": "rerank", "k": 10, "window_size": 100},
    "dense": {"mode": "dense", "k": 10},
    "hybrid": {"mode": "hybrid", "k": 10},
}
WARMUP = 20


class PrecomputedVectors(Encoder):
    """An encoder that returns vectors given beforehand, looked up by the exact passage text; it never runs a model.

    Its identity (``info``) is the real encoder's, whose document vectors the given ones are, so the cluster's
    mapping records (and its searches check) that encoder.

    Raises:
        KeyError: from :meth:`encode`, for a text whose vector was not given (rather than embedding it).
    """

    def __init__(self, info: EncoderInfo) -> None:
        self.name, self.dims, self.max_length = info.name, info.dims, info.max_length
        self.pooling = info.pooling  # type: ignore[assignment]
        self._fingerprint = info.fingerprint
        self._rows: dict[str, np.ndarray] = {}

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def give(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Remember ``vectors[i]`` as the vector of ``texts[i]``; a text given twice must come with the same vector."""
        for text, row in zip(texts, vectors, strict=True):
            old = self._rows.setdefault(text, row)
            if old is not row and not np.array_equal(old, row):
                raise ValueError(f"two different vectors for the same passage text {text[:80]!r}")

    def forget(self) -> None:
        self._rows.clear()

    def _embed_batch(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - encode() is overridden
        raise NotImplementedError("PrecomputedVectors only returns the vectors it was given")

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        missing = [t for t in texts if t not in self._rows]
        if missing:
            raise KeyError(f"no precomputed vector for {len(missing)} passage(s), first {missing[0][:80]!r}")
        return np.stack([self._rows[t] for t in texts]).astype(np.float32, copy=False)


class ScaleBenchBackend(OpenSearchBackend):
    """The OpenSearch backend whose index template adds :attr:`vector_encoder` (a k-NN ``method.parameters.encoder``,
    e.g. the Lucene scalar quantizer) to its two ``knn_vector`` fields; everything else is the project's."""

    vector_encoder: dict[str, Any] | None = None

    def _template(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        body = super()._template(*args, **kwargs)
        if self.vector_encoder is not None:
            props = body["template"]["mappings"]["properties"]
            for field in (props["embedding"], props["passages"]["properties"]["embedding"]):
                field["method"]["parameters"]["encoder"] = dict(self.vector_encoder)
        return body


class TookRecorder:
    """The client as the backend sees it, adding up the ``took`` (ms, as the node measured it) of every search."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.took_ms = 0.0

    def search(self, *args: Any, **kwargs: Any) -> Any:
        resp = self._client.search(*args, **kwargs)
        self.took_ms += float(resp.get("took", 0))
        return resp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


# --------------------------------------------------------------------------------------------------- the node
class Node:
    """One OpenSearch node started by ``node.sh`` in ``state`` (its own directory: never the tests' node)."""

    def __init__(self, state: Path, heap: str, java_home: str | None) -> None:
        self.state, self.heap = state, heap
        self.env = {**os.environ, "OPENSEARCH_HEAP": heap, "OPENSEARCH_CDS": "ro"}
        if java_home:
            self.env["OPENSEARCH_JAVA_HOME"] = java_home
        self.url: str | None = None
        self.pid: int | None = None

    def _sh(self, *args: str) -> str:
        done = subprocess.run(
            [str(NODE_SH), *args, str(self.state)], env=self.env, stdout=subprocess.PIPE, text=True, check=True
        )
        return done.stdout.strip()

    def start(self) -> str:
        t0 = time.perf_counter()
        self.url = self._sh("start").splitlines()[-1]
        self.start_seconds = round(time.perf_counter() - t0, 1)
        self.pid = int(self._sh("pid"))
        return self.url

    def peak_rss_mib(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return None

    def stop(self) -> None:
        subprocess.run([str(NODE_SH), "stop", str(self.state)], env=self.env, check=False)
        self.url = self.pid = None


# --------------------------------------------------------------------------------------------------- helpers
def exact_top10(index: str, qvecs: np.ndarray, out: Any) -> None:
    """Child: each query's top 10 document ids by the embedded engine's exact kNN."""
    from es_biomed.backends.embedded.index import EmbeddedIndex

    exact = EmbeddedIndex(index, vector_search="exact")
    out.put([[h.doc_id for h in exact.knn(v, 10)] for v in qvecs])


def _dir_mib(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def _percentiles(lat: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "qps": round(1000 / float(np.mean(lat)), 1),
    }


def read_documents(fh: Any, count: int) -> list[Any]:
    """The next ``count`` documents of ``corpus.jsonl`` (as ``bench_scale.build`` reads them)."""
    from es_biomed.corpus import Document

    docs = []
    for _ in range(count):
        rec = json.loads(fh.readline())
        docs.append(
            Document(
                id=rec["id"], title=rec["title"], abstract=rec["abstract"], source=rec["source"], date=rec["date"]
            )
        )
    return docs


# --------------------------------------------------------------------------------------------------- embedded
def run_embedded(gen: Path, work: Path, n: int, encoder: dict[str, Any], ann_from: int, queries: list[str],
                 qvecs: np.ndarray, keep: bool) -> tuple[dict[str, Any], list[list[str]]]:  # fmt: skip
    """bench_scale's build and search children on the first ``n`` documents, and the exact top 10 per query."""
    ix = str(work / f"embedded-{n}")
    try:
        res = {
            "build": run_child(build, str(gen), ix, n, encoder, ann_from),
            "search": run_child(search, ix, queries, qvecs),
        }
        exact = run_child(exact_top10, ix, qvecs)
    finally:
        if not keep:
            shutil.rmtree(ix, ignore_errors=True)
    return res, exact


# --------------------------------------------------------------------------------------------------- opensearch
def ingest(be: Any, gen: Path, n: int, info: EncoderInfo, batch_size: int) -> dict[str, Any]:
    """Bulk-write the first ``n`` documents through ``be.index_documents`` with their precomputed vectors.

    Reading and parsing ``corpus.jsonl`` is excluded from the time (as ``bench_scale.build`` does); the final
    refresh is included.
    """
    from es_biomed.corpus.passages import split_passages

    vecs = np.load(gen / "vectors.npy", mmap_mode="r")
    enc = PrecomputedVectors(info)
    totals = {"ok": 0, "failed": 0, "throttled": 0, "embed_seconds": 0.0, "bulk_seconds": 0.0}
    first_failure = None
    seconds = read_seconds = 0.0
    with open(gen / "corpus.jsonl", encoding="utf-8") as fh:
        done = 0
        while done < n:
            tr = time.perf_counter()
            docs = read_documents(fh, min(BATCH, n - done))
            texts = [split_passages(d, be.passage_config) for d in docs]
            if any(len(t) != 1 for t in texts):
                raise ValueError("a generated document cut into several passages: one vector per document expected")
            enc.give([t[0] for t in texts], np.asarray(vecs[done : done + len(docs)], dtype=np.float32))
            read_seconds += time.perf_counter() - tr
            t0 = time.perf_counter()
            report = be.index_documents(docs, enc, batch_size=batch_size, refresh=done + len(docs) >= n)
            seconds += time.perf_counter() - t0
            enc.forget()
            totals["ok"] += report.ok
            totals["failed"] += len(report.failed)
            totals["throttled"] += report.throttled
            totals["embed_seconds"] += report.embed_seconds
            totals["bulk_seconds"] += report.bulk_seconds
            first_failure = first_failure or (report.failed[0] if report.failed else None)
            done += len(docs)
    if totals["ok"] != n:
        raise RuntimeError(f"{totals['failed']} of {n} documents failed (first: {first_failure})")
    return {
        "seconds": round(seconds, 2),
        "docs_per_s": round(n / seconds, 1),
        "batch_size": batch_size,
        "read_seconds_excluded": round(read_seconds, 2),
        "vector_lookup_seconds": round(totals["embed_seconds"], 2),
        "bulk_seconds": round(totals["bulk_seconds"], 2),
        "throttled": totals["throttled"],
    }


def index_stats(be: Any, state: Path) -> dict[str, Any]:
    """Size on disk and segments of the alias's index (``_cat/indices`` and ``_stats``), and the node's data dir."""
    index = be.current_index()
    cat = be.client.cat.indices(index=index, format="json", bytes="b")[0]
    stats = be.client.indices.stats(index=index, metric="store,docs,segments")["indices"][index]["primaries"]
    field = be.client.indices.get_mapping(index=index)[index]["mappings"]["properties"]["embedding"]
    return {
        "index": index,
        "health": cat["health"],
        "store_mib": round(int(cat["store.size"]) / 2**20, 1),
        "primary_store_mib": round(int(cat["pri.store.size"]) / 2**20, 1),
        "lucene_docs": int(stats["docs"]["count"]),  # nested passages count as Lucene documents
        "documents": be.count(),
        "segments": int(stats["segments"]["count"]),
        "node_data_dir_mib": _dir_mib(state / "data"),
        "vector_mapping": field,
    }


def wait_for_merges(be: Any, timeout: float = 3600.0) -> float:
    """Wait until the index runs no merge (the ones a bulk ingest leaves behind); returns the seconds waited.

    Raises:
        RuntimeError: merges still run after ``timeout`` seconds.
    """
    index, t0 = be.current_index(), time.perf_counter()
    while True:
        merges = be.client.indices.stats(index=index, metric="merge")["indices"][index]["primaries"]["merges"]
        if not merges["current"]:
            return round(time.perf_counter() - t0, 1)
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"{index}: {merges['current']} merges still running after {timeout:.0f} s")
        time.sleep(0.5)


def jvm_heap(be: Any) -> dict[str, Any]:
    node = next(iter(be.client.nodes.stats(metric="jvm")["nodes"].values()))
    mem = node["jvm"]["mem"]
    return {
        "heap_used_mib": round(mem["heap_used_in_bytes"] / 2**20, 1),
        "heap_max_mib": round(mem["heap_max_in_bytes"] / 2**20, 1),
    }


def time_modes(searcher: Any, queries: list[str], qvecs: np.ndarray) -> tuple[dict[str, Any], list[list[str]]]:
    """p50 / p99 / QPS per mode through ``searcher.execute`` (query encoding excluded); the dense top 10 ids.

    Every mode is warmed on the first :data:`WARMUP` queries before any is timed (the JVM compiles as it goes). Then
    each query runs in every mode, the modes' order turning by one from query to query, so that what else the machine
    does at a moment falls on all modes alike rather than on the one being timed then.
    """
    from es_biomed.query.presets import default_plan

    plans = [(name, default_plan(**overrides)) for name, overrides in PLANS.items()]
    for _, plan in plans:
        for q, v in zip(queries[:WARMUP], qvecs[:WARMUP], strict=True):
            searcher.execute(plan.replace(query=q), v)
    lat: dict[str, list[float]] = {name: [] for name, _ in plans}
    took: dict[str, list[float]] = {name: [] for name, _ in plans}
    recorder = searcher.engine.client if isinstance(searcher.engine.client, TookRecorder) else None
    dense_ids: list[list[str]] = []
    for i, (q, v) in enumerate(zip(queries, qvecs, strict=True)):
        for name, plan in plans[i % len(plans) :] + plans[: i % len(plans)]:
            if recorder:
                recorder.took_ms = 0.0
            t0 = time.perf_counter()
            res = searcher.execute(plan.replace(query=q), v)
            lat[name].append((time.perf_counter() - t0) * 1000)
            if recorder:
                took[name].append(recorder.took_ms)
            if name == "dense":
                dense_ids.append([h.doc_id for h in res.hits])
    modes = {name: _percentiles(values) for name, values in lat.items()}
    if recorder:
        for name, values in took.items():
            modes[name]["server_took_p50_ms"] = round(float(np.percentile(values, 50)), 1)
            modes[name]["server_took_p99_ms"] = round(float(np.percentile(values, 99)), 1)
    return modes, dense_ids


def run_opensearch(args: argparse.Namespace, n: int, info: EncoderInfo, queries: list[str], qvecs: np.ndarray,
                   exact: list[list[str]]) -> dict[str, Any]:  # fmt: skip
    """Start the node, write the first ``n`` documents, time the searches, drop the index, stop the node."""
    from es_biomed.backends.cluster import ClusterConfig
    from es_biomed.search import Searcher

    node = Node(args.work / "opensearch-node", args.heap, args.java_home)
    out: dict[str, Any] = {"heap": args.heap, "quantisation": args.quantisation}
    try:
        url = node.start()
        out["node_start_seconds"] = node.start_seconds
        cfg = ClusterConfig(url, engine="opensearch", alias=ALIAS, request_timeout=args.request_timeout)
        be = ScaleBenchBackend.connect(cfg)
        be.vector_encoder = QUANTISATION[args.quantisation]
        out["version"] = be.capabilities().version
        out["knn_plugin"] = be.capabilities().knn
        be.drop()  # a previous run's index of this alias, if a kept state dir holds one
        be.setup(info)
        out["ingest"] = ingest(be, args.gen, n, info, args.batch_size)
        if args.force_merge:
            t0 = time.perf_counter()
            be.client.indices.forcemerge(index=be.current_index(), max_num_segments=1, request_timeout=3600)
            out["force_merge_seconds"] = round(time.perf_counter() - t0, 1)
        out["merge_wait_seconds"] = wait_for_merges(be)
        out["index"] = index_stats(be, node.state)
        out["jvm_after_ingest"] = jvm_heap(be)
        be.client = TookRecorder(be.client)
        searcher = Searcher(be, encoder=PrecomputedVectors(info))  # checks the mapping's encoder identity
        modes, dense_ids = time_modes(searcher, queries, qvecs)
        out["search"] = {
            "modes": modes,
            "hybrid": "client-side RRF of an in-cluster BM25 and an in-cluster kNN search (no neural-search plugin)",
            "shard_retries": be.shard_retries,
        }
        recall = [len(set(a) & set(e)) / 10 for a, e in zip(dense_ids, exact, strict=True)]
        out["dense_recall_at_10_vs_embedded_exact"] = round(float(np.mean(recall)), 4)
        out["jvm_after_search"] = jvm_heap(be)
        out["node_peak_rss_mib"] = node.peak_rss_mib()
        if not args.keep:
            be.drop()
    finally:
        node.stop()
    if not args.keep:
        shutil.rmtree(node.state, ignore_errors=True)
    return out


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks, which stop the node


def main() -> int:
    os.environ.setdefault("USE_TF", "0")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gen", type=Path, required=True, help="gen_corpus.py's --out (corpus.jsonl, vectors.npy)")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--work", type=Path, default=Path("/tmp/es-biomed-scale-cluster"),
                    help="the embedded indexes and the node's state directory (its data, logs)")  # fmt: skip
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "scale_cluster.json")
    ap.add_argument("--heap", default="4g", help="the node's JVM heap (OPENSEARCH_HEAP)")
    ap.add_argument("--java-home", default=os.environ.get("OPENSEARCH_JAVA_HOME") or os.environ.get("JAVA_HOME"))
    ap.add_argument("--quantisation", choices=sorted(QUANTISATION), default="sq7")
    ap.add_argument("--batch-size", type=int, default=256, help="documents per write batch (the CLI's default)")
    ap.add_argument("--request-timeout", type=float, default=120.0)
    ap.add_argument("--force-merge", action="store_true", help="merge the index to one segment before searching")
    ap.add_argument("--ann-from", type=int, default=None, help="embedded: build the ANN graph from this size")
    ap.add_argument(
        "--keep", action="store_true", help="keep the embedded indexes, the cluster index and the node dir"
    )
    args = ap.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        ap.error(f"--sizes must be integers separated by commas, got {args.sizes!r}")
    stats = json.loads((args.gen / "stats.json").read_text())
    if max(sizes) > int(stats["docs"]):
        ap.error(f"--sizes goes up to {max(sizes)} but {args.gen} holds {stats['docs']} documents")
    signal.signal(signal.SIGTERM, _sigterm)

    from es_biomed.backends.embedded.ann import EXACT_BELOW_ROWS
    from es_biomed.encode import load_encoder

    ann_from = EXACT_BELOW_ROWS if args.ann_from is None else args.ann_from
    queries = real_queries(args.shared, args.queries)
    enc = load_encoder(stats["vectors"]["encoder"])  # the vectors mix this encoder's document vectors
    qvecs = np.asarray(enc.encode_queries(queries), dtype=np.float32)
    info = enc.info
    del enc
    args.work.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "generated": {k: stats[k] for k in ("docs", "seed", "keep")},
        "queries": len(queries),
        "encoder": info.to_dict(),
        "sizes": [],
        "machine": machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for n in sizes:
        t0 = time.perf_counter()
        row: dict[str, Any] = {"docs": n}
        row["embedded"], exact = run_embedded(
            args.gen, args.work, n, info.to_dict(), ann_from, queries, qvecs, args.keep
        )
        row["opensearch"] = run_opensearch(args, n, info, queries, qvecs, exact)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        payload["sizes"].append(row)
        print(json.dumps(row), flush=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n")  # after each size: a later failure keeps it
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
