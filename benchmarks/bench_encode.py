"""Encoder throughput on 2 CPU cores: short texts (SciFact claims) and abstracts (SciFact corpus).

.venv/bin/python benchmarks/bench_encode.py [--scifact ../shared/data/scifact] [--backends torch,tf]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _common import Timer, peak_rss_mb, save

from es_biomed.encode import load_encoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scifact", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"))
    ap.add_argument("--backends", default="torch,tf")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--short", type=int, default=512)
    ap.add_argument("--long", type=int, default=128)
    args = ap.parse_args()
    d = Path(args.scifact)
    short = [json.loads(x)["text"] for x in (d / "queries.jsonl").read_text().splitlines()][: args.short]
    long = [
        (lambda o: f"{o['title']} {o['text']}")(json.loads(x)) for x in (d / "corpus.jsonl").read_text().splitlines()
    ][: args.long]
    results = {}
    for backend in args.backends.split(","):
        if backend == "torch":
            enc = load_encoder("all-MiniLM-L6-v2")
        else:
            from es_biomed.encode.registry import resolve_model_path
            from es_biomed.encode.tf_export import export_savedmodel

            tmp = Path(tempfile.mkdtemp()) / "minilm-tf"
            export_savedmodel(resolve_model_path("all-MiniLM-L6-v2"), tmp)
            enc = load_encoder(str(tmp))
        enc.encode(short[:64], batch_size=args.batch_size)  # warm-up (graph tracing, allocator)
        row = {}
        for label, texts in (("short", short), ("abstracts", long)):
            with Timer() as t:
                enc.encode(texts, batch_size=args.batch_size)
            row[f"{label}_per_s"] = round(len(texts) / t.seconds, 1)
            row[f"{label}_n"] = len(texts)
        row["peak_rss_mb"] = round(peak_rss_mb())
        results[backend] = row
        print(backend, row)
    print(save("bench_encode", {"batch_size": args.batch_size, "results": results}))


if __name__ == "__main__":
    main()
