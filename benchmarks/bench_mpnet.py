"""Encode cost of all-mpnet-base-v2 (768 dims, 12 layers, 384 tokens) against all-MiniLM-L6-v2 (384 dims, 6 layers,
256 tokens): documents per second on SciFact title + abstract texts, batch 32, 2 threads, torch and bf16 (OpenVINO).

Variants run in interleaved rounds and each reports its median, so a neighbouring process slows all alike. Each
model's texts are cut at its own limit (the cost of the model as registered). With ``--retrieval FILE`` the summary
of ``training/eval_retrieval.py``'s output is copied in, so ``benchmarks/results/mpnet.json`` holds both.

.venv/bin/python benchmarks/bench_mpnet.py [--scifact ../shared/data/scifact] [--n 256] [--rounds 2]
    [--retrieval training/results/retrieval_eval_mpnet.json ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from _common import Timer, peak_rss_mb, save

from es_biomed.encode import load_encoder

VARIANTS = {
    "minilm-torch": "all-MiniLM-L6-v2",
    "minilm-bf16": "all-MiniLM-L6-v2-bf16",
    "mpnet-torch": "all-mpnet-base-v2",
    "mpnet-bf16": "all-mpnet-base-v2-bf16",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scifact", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"))
    ap.add_argument("--n", type=int, default=256, help="abstracts")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--retrieval", nargs="*", default=[], help="training/eval_retrieval.py outputs to summarize")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    lines = (Path(args.scifact) / "corpus.jsonl").read_text().splitlines()[: args.n]
    texts = [(lambda o: f"{o['title']} {o['text']}")(json.loads(x)) for x in lines]
    encoders = {}
    for key in args.variants.split(","):
        name = VARIANTS[key]
        encoders[key] = load_encoder(name, threads=args.threads) if key.endswith("bf16") else load_encoder(name)
        encoders[key].encode(texts[:16], batch_size=args.batch_size)  # warm-up
        print(key, encoders[key].info, flush=True)
    rates: dict[str, list[float]] = {k: [] for k in encoders}
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for key, enc in encoders.items():
            with Timer() as t:
                vectors[key] = enc.encode(texts, batch_size=args.batch_size)
            rates[key].append(len(texts) / t.seconds)
        print(f"round {r + 1}:", {k: round(v[-1], 2) for k, v in rates.items()}, flush=True)
    results: dict[str, dict[str, object]] = {}
    for key, enc in encoders.items():
        tokens = enc.tokenize(texts)["attention_mask"].sum(axis=1)
        results[key] = {
            "encoder": VARIANTS[key],
            "precision": getattr(enc, "precision", "fp32"),
            "dims": enc.dims,
            "max_length": enc.max_length,
            "mean_tokens": round(float(tokens.mean()), 1),
            "max_tokens": int(tokens.max()),
            "docs_per_s": round(statistics.median(rates[key]), 2),
            "rounds_docs_per_s": [round(x, 2) for x in rates[key]],
            "fingerprint": enc.fingerprint,
        }
    for model in ("minilm", "mpnet"):
        if f"{model}-torch" in vectors and f"{model}-bf16" in vectors:
            diff = float(np.abs(vectors[f"{model}-torch"] - vectors[f"{model}-bf16"]).max())
            results[f"{model}-bf16"]["max_abs_diff_vs_torch"] = diff
    ratios = {
        f"mpnet_vs_minilm_{rt}": round(results[f"mpnet-{rt}"]["docs_per_s"] / results[f"minilm-{rt}"]["docs_per_s"], 3)
        for rt in ("torch", "bf16")
        if f"mpnet-{rt}" in results and f"minilm-{rt}" in results
    }
    out: dict[str, object] = {
        "command": "python benchmarks/bench_mpnet.py " + " ".join(sys.argv[1:]),
        "texts": f"first {len(texts)} SciFact corpus title + abstract",
        "batch_size": args.batch_size,
        "threads": args.threads,
        "rounds": args.rounds,
        "results": results,
        "ratios": ratios,
        "peak_rss_mb": round(peak_rss_mb()),
    }
    from es_biomed.models.fetch import fetch_record

    record = fetch_record("all-mpnet-base-v2")
    out["fetch"] = {k: record.get(k) for k in ("packages", "wheel_sha256", "fetched_seconds")}
    if args.retrieval:
        out["retrieval"] = {}
        for path in args.retrieval:
            out["retrieval"].update(json.loads(Path(path).read_text())["summary"])
        out["retrieval_files"] = args.retrieval
    print(json.dumps(out, indent=2))
    print(save("mpnet", out))


if __name__ == "__main__":
    main()
