"""Load on ``es-biomed serve`` over loopback: 1, 4 and 16 concurrent clients, a fixed count of requests each.

    flock /tmp/es-biomed-cpu.lock .venv/bin/python benchmarks/bench_serve.py [--index indexes/scifact-sample]
        [--requests 400] [--concurrency 1,4,16] [--modes rerank,bm25]          # -> results/bench_serve.json
        [--batch-wait-ms 0,2 --rounds 3 --out bench_serve_batcher]

``--batch-wait-ms`` passes each value to ``es-biomed serve --batch-wait-ms`` (0: no batching of query encodings),
one server per value; ``--rounds`` repeats the values in turn (0, 2, 0, 2, ...), so that a load that comes and goes
on a shared machine falls on each alike. Each row records its value, its round and the load average before it.

The server is the real one (``python -m es_biomed serve``, uvicorn, one process, searches in its thread pool)
on a free 127.0.0.1 port, started here and stopped by PID at the end, also on failure. Each client is a thread
with its own keep-alive connection that sends ``GET /search?q=...&mode=...&k=10`` for the SciFact claims in
turn until the level's requests are spent. Latency is per request as the client sees it (HTTP, JSON, the query
encoding, the search, snippets); QPS is requests over the level's wall time. Any non-200 answer or transport
error is counted, and the run fails unless there are none. The clients share the machine's cores with the
server, so the numbers include their own cost. Each level also records the CPU time per request of the server
process (``/proc/<pid>/stat``) and of the clients: what a request costs, which other load on the cores changes
less than it changes QPS.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from _common import save

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(index: str, port: int, log: Path, batch_wait_ms: str | None = None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "es_biomed", "serve", "--index", index, "--port", str(port), "--no-qa"]
    if batch_wait_ms is not None:
        cmd += ["--batch-wait-ms", batch_wait_ms]
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*cmd, "--log-level", "warning"], stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError("server did not start in 180 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    url: str, queries: list[str], mode: str, clients: int, requests: int, server_pid: int | None = None
) -> dict[str, float | int]:
    """``requests`` searches from ``clients`` threads; p50 / p99 latency (ms), QPS and the error count, and the CPU
    time per request of the server and of the clients (what a request costs, whatever else shares the cores)."""
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while True:
                with lock:
                    i = next(counter)
                if i >= requests:
                    return
                t0 = time.perf_counter()
                try:
                    r = http.get("/search", params={"q": queries[i % len(queries)], "mode": mode, "k": 10})
                    ok = r.status_code == 200 and len(r.json()["hits"]) > 0
                    why = f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    ok, why = False, repr(exc)
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(dt)
                    if not ok:
                        errors.append(why)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    server_cpu0 = cpu_seconds(server_pid) if server_pid else 0.0
    client_cpu0 = time.process_time()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - client_cpu0
    server_cpu = cpu_seconds(server_pid) - server_cpu0 if server_pid else float("nan")
    lat = np.array(latencies)
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "qps": round(len(latencies) / wall, 1),
        "wall_s": round(wall, 2),
        "server_cpu_ms_per_request": round(server_cpu * 1000 / len(latencies), 2),
        "client_cpu_ms_per_request": round(client_cpu * 1000 / len(latencies), 2),
        **({"first_errors": errors[:5]} if errors else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default="indexes/scifact-sample", help="Built by `make demo`.")
    ap.add_argument("--queries", default="data/scifact-sample/queries.jsonl")
    ap.add_argument("--requests", type=int, default=400, help="Requests per concurrency level and mode.")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--modes", default="rerank,bm25")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument(
        "--batch-wait-ms",
        default=None,
        help="Comma-separated values for `es-biomed serve --batch-wait-ms` (0: no batching); default: serve's.",
    )
    ap.add_argument("--rounds", type=int, default=1, help="Times each --batch-wait-ms value is measured, in turn.")
    ap.add_argument("--out", default="bench_serve", help="Results file: results/<out>.json.")
    args = ap.parse_args()
    queries = [json.loads(line)["text"] for line in (REPO / args.queries).read_text().splitlines() if line.strip()]
    modes = args.modes.split(",")
    waits: list[str | None] = args.batch_wait_ms.split(",") if args.batch_wait_ms else [None]
    results: dict[str, object] = {
        "index": args.index,
        "queries": f"{args.queries} ({len(queries)} claims, in turn)",
        "requests_per_level": args.requests,
        "k": 10,
        "server": "es-biomed serve: uvicorn, 1 process, searches in the thread pool; clients: threads, keep-alive",
        **({"batch_wait_ms": waits, "rounds": args.rounds} if args.batch_wait_ms else {}),
    }
    rows: dict[str, list[dict[str, object]]] = {mode: [] for mode in modes}
    for rnd, wait in itertools.product(range(args.rounds), waits):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path("/tmp") / f"bench_serve-{port}.log"
        proc = start_server(args.index, port, log, wait)
        try:
            health = httpx.get(f"{url}/health").json()
            results.update(documents=health["index"]["documents"], encoder=health["encoder"]["name"])
            for mode in modes:
                load(url, queries, mode, 1, args.warmup)
                for c in (int(x) for x in args.concurrency.split(",")):
                    load1 = round(os.getloadavg()[0], 2)  # what else runs on the machine (this run adds to it)
                    level = load(url, queries, mode, c, args.requests, proc.pid)
                    row: dict[str, object] = {**level, "loadavg_1m_before": load1}
                    if wait is not None:
                        row = {"batch_wait_ms": float(wait), "round": rnd, **row}
                    print(mode, row, flush=True)
                    rows[mode].append(row)
        finally:
            stop_server(proc)
    results.update(rows)
    bad = [(m, r) for m in modes for r in rows[m] if r["errors"]]
    print(save(args.out, results))
    if bad:
        raise SystemExit(f"errors under load: {bad}")


if __name__ == "__main__":
    main()
