"""Per-query latency of es-biomed search --mode rerank_ce (query encoding + BM25 + cosine rescore + cross-encoder over
the top N), median over 20 SciFact dev claims, fp32 and bf16 cross-encoder; needs runs/ce/minilm/fp16 and the SciFact
eval index built by training/eval_retrieval.py --fast.  .venv/bin/python benchmarks/bench_cross_encoder_latency.py
"""

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, "training")
from eval_retrieval import _slug, fast_encoder

from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.corpus.readers import load_beir
from es_biomed.encode.cross_encoder import load_cross_encoder
from es_biomed.query.presets import default_plan
from es_biomed.search import Searcher
from es_biomed.train.data.sources import scifact_split

enc = fast_encoder("all-MiniLM-L6-v2")
index = EmbeddedIndex(Path("runs/eval-indexes") / f"scifact-test-{_slug(enc)}")
train = load_beir("../shared/data/scifact", "train")
_, dev = scifact_split("../shared/data/scifact")
qs = [train.queries[q] for q in sorted(dev)[:20]]
plan = default_plan()
out = {}
for prec in ("fp32", "bf16"):
    ce = load_cross_encoder("runs/ce/minilm/fp16", precision=prec)
    for n in (20, 50):
        ts = []
        for text in qs:
            t = time.perf_counter()
            v = enc.encode_queries([text])[0]
            Searcher(index, enc, cross_encoder=ce).execute(
                plan.replace(query=text, mode="rerank_ce", window_size=max(30, n), ce_window=n), v
            )
            ts.append((time.perf_counter() - t) * 1000)
        out[f"{prec} N={n}"] = round(statistics.median(ts), 1)
ts = []
for text in qs:
    t = time.perf_counter()
    v = enc.encode_queries([text])[0]
    Searcher(index, enc).execute(plan.replace(query=text, mode="rerank"), v)
    ts.append((time.perf_counter() - t) * 1000)
out["rerank only"] = round(statistics.median(ts), 1)
print(json.dumps(out))
