"""``POST /embed`` latency over HTTP (issue 26): one query, and a batch of 32, from a running ``es-biomed serve``.

    .venv/bin/es-biomed index data/scifact-sample --index /tmp/embedbench/ix
    .venv/bin/es-biomed serve --index /tmp/embedbench/ix --port 8765 --no-qa &
    .venv/bin/python benchmarks/bench_embed.py --url http://127.0.0.1:8765 [--shared ../shared/data]

The texts are SciFact claims (5 warm-up requests, then 100 single-query requests and 8 batches of 32); times are
wall-clock at the client, p50 / p95 in ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import httpx
from _common import save


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8765")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    lines = (args.shared / "scifact" / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    claims = [json.loads(line)["text"] for line in lines][:400]
    client = httpx.Client(base_url=args.url, timeout=60)

    def timed(texts: list[str]) -> float:
        t0 = time.perf_counter()
        client.post("/embed", json={"texts": texts}).raise_for_status()
        return (time.perf_counter() - t0) * 1000

    for q in claims[:5]:
        timed([q])
    one = sorted(timed([q]) for q in claims[5:105])
    batch = [timed(claims[105 + 32 * i : 137 + 32 * i]) for i in range(8)]
    result = {
        "one_query_p50_ms": round(statistics.median(one), 2),
        "one_query_p95_ms": round(one[94], 2),
        "batch32_p50_ms": round(statistics.median(batch), 2),
        "batch32_per_text_ms": round(statistics.median(batch) / 32, 2),
    }
    print(json.dumps(result))
    save("embed_latency", result)


if __name__ == "__main__":
    main()
