"""Encoder throughput on the CPU, every variant against sentence-transformers in one run on the same texts.

Texts: the first 512 SciFact claims (short) and the first 256 SciFact title + abstract texts (long, most cut at 256
tokens). Variants: sentence-transformers ``encode`` (batch 32, ``normalize_embeddings=True``, the reference), the
torch encoder, ONNX Runtime fp32 and ONNX Runtime int8 (``all-MiniLM-L6-v2-onnx`` / ``-int8``, exported into the
ONNX cache on first use), the fp32 export on OpenVINO in bf16 (``bf16``: ``all-MiniLM-L6-v2-bf16``), torch under bf16 autocast (``torch-bf16``, unregistered: how much AMX-BF16 would give),
optionally TensorFlow. The variants run in interleaved rounds and each reports its median,
so a neighbouring process slows all of them alike; ratios are against sentence-transformers in the same run.
Also: one-query latency (a 20-word query, p50/p95 over ``--queries`` calls) and, for the ONNX variants, the wall
time of a fresh process that loads the encoder and embeds one query (the light query path).

.venv/bin/python benchmarks/bench_encode.py [--scifact ../shared/data/scifact] [--backends st,torch,onnx,int8,bf16[,torch-bf16,tf]]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
from _common import Timer, peak_rss_mb, save

from es_biomed.encode import load_encoder

QUERY = "Does daily low-dose aspirin reduce the risk of a first stroke or heart attack in adults with type 2 diabetes"
assert len(QUERY.split()) == 20
ONNX_NAMES = {"onnx": "all-MiniLM-L6-v2-onnx", "int8": "all-MiniLM-L6-v2-int8", "bf16": "all-MiniLM-L6-v2-bf16"}


def _encoders(backends: Sequence[str], batch_size: int) -> dict[str, Callable[[list[str]], np.ndarray]]:
    fns: dict[str, Callable[[list[str]], np.ndarray]] = {}
    for backend in backends:
        if backend == "st":
            from sentence_transformers import SentenceTransformer

            from es_biomed.models.catalog import resolve as resolve_model_path

            st = SentenceTransformer(str(resolve_model_path("all-MiniLM-L6-v2")), device="cpu")
            fns[backend] = lambda t, st=st: st.encode(t, batch_size=batch_size, normalize_embeddings=True)
            continue
        if backend == "torch-bf16":  # not a registered encoder: torch autocast to bf16 (AMX where the CPU has it)
            import torch

            enc = load_encoder("all-MiniLM-L6-v2")

            def run(t: list[str], enc=enc) -> np.ndarray:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return enc.encode(t, batch_size=batch_size)

            fns[backend] = run
            continue
        if backend == "tf":
            from es_biomed.export.tf_savedmodel import export_savedmodel
            from es_biomed.models.catalog import resolve as resolve_model_path

            tmp = Path(tempfile.mkdtemp()) / "minilm-tf"
            export_savedmodel(resolve_model_path("all-MiniLM-L6-v2"), tmp)
            enc = load_encoder(str(tmp))
        else:
            enc = load_encoder(ONNX_NAMES.get(backend, "all-MiniLM-L6-v2"))
            print(backend, enc.info, getattr(enc, "model_dir", ""), flush=True)
        fns[backend] = lambda t, enc=enc: enc.encode(t, batch_size=batch_size)
    return fns


def _cold_query_seconds(name: str) -> float:
    """Wall time of a new process that imports es_biomed, loads ``name`` and embeds one query."""
    code = f"from es_biomed.encode import load_encoder; load_encoder({name!r}).encode_queries([{QUERY!r}])"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t0


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("onnxruntime", "openvino", "tokenizers", "torch", "transformers", "sentence-transformers", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scifact", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"))
    ap.add_argument("--backends", default="st,torch,onnx,int8,bf16")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--short", type=int, default=512)
    ap.add_argument("--long", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each variant reports its median")
    ap.add_argument("--queries", type=int, default=200, help="one-query calls timed for the latency percentiles")
    args = ap.parse_args()
    d = Path(args.scifact)
    short = [json.loads(x)["text"] for x in (d / "queries.jsonl").read_text().splitlines()][: args.short]
    long = [
        (lambda o: f"{o['title']} {o['text']}")(json.loads(x)) for x in (d / "corpus.jsonl").read_text().splitlines()
    ][: args.long]
    backends = args.backends.split(",")
    fns = _encoders(backends, args.batch_size)
    for fn in fns.values():
        fn(short[:64])  # warm-up (allocator, graph tracing, thread pools)

    rates: dict[str, dict[str, list[float]]] = {b: {"short": [], "abstracts": []} for b in fns}
    vectors: dict[tuple[str, str], np.ndarray] = {}
    for r in range(args.rounds):
        for backend, fn in fns.items():
            for label, texts in (("short", short), ("abstracts", long)):
                with Timer() as t:
                    vectors[backend, label] = fn(texts)
                rates[backend][label].append(len(texts) / t.seconds)
        print(f"round {r + 1}:", {b: {k: round(v[-1], 1) for k, v in x.items()} for b, x in rates.items()}, flush=True)

    results: dict[str, dict[str, object]] = {}
    ref = "st" if "st" in fns else backends[0]
    for backend, fn in fns.items():
        row: dict[str, object] = {}
        for label, texts in (("short", short), ("abstracts", long)):
            med = statistics.median(rates[backend][label])
            row[f"{label}_per_s"] = round(med, 1)
            row[f"{label}_vs_st"] = round(med / statistics.median(rates[ref][label]), 2)
            row[f"{label}_max_abs_diff_vs_st"] = float(np.abs(vectors[backend, label] - vectors[ref, label]).max())
            row[f"{label}_n"] = len(texts)
        lat = []
        for _ in range(args.queries + 10):
            with Timer() as t:
                fn([QUERY])
            lat.append(t.seconds * 1000)
        lat = sorted(lat[10:])
        row["query_p50_ms"] = round(lat[len(lat) // 2], 2)
        row["query_p95_ms"] = round(lat[int(len(lat) * 0.95)], 2)
        if backend in ONNX_NAMES:
            row["cold_load_and_query_s"] = round(_cold_query_seconds(ONNX_NAMES[backend]), 2)
        results[backend] = row
        print(backend, row, flush=True)
    print(
        save(
            "bench_encode",
            {
                "command": "python benchmarks/bench_encode.py " + " ".join(sys.argv[1:]),
                "batch_size": args.batch_size,
                "rounds": args.rounds,
                "reference": ref,
                "query_words": len(QUERY.split()),
                "versions": _versions(),
                "peak_rss_mb": round(peak_rss_mb()),
                "results": results,
            },
        )
    )


if __name__ == "__main__":
    main()
