"""A faster fp32-path candidate, measured and gated: static int8 of the default encoder on OpenVINO (issue 20).

On a CPU without bf16 (or with ``ES_BIOMED_BF16=off``) the default document encoder runs fp32. This script builds the
one variant that could speed that path up without a GPU: the fp32 ``model.onnx`` quantized to int8 by NNCF's
post-training quantization (``ModelType.TRANSFORMER``: SmoothQuant and fast bias correction; calibration on 200
CORD-19 abstracts and 100 PubMedQA questions and contexts, never SciFact or BioASQ), run on OpenVINO. Then:

* ``speed``: texts/s on 256 SciFact abstracts and 512 claims against sentence-transformers, ONNX Runtime fp32,
  OpenVINO fp32 and ONNX Runtime dynamic int8, in interleaved rounds (medians);
* ``gate``: the quality gate of issue 10 (SciFact test NDCG@10, BioASQ 7b dev MRR@10) for every pair of document
  and query encoder of fp32 ONNX (A) and the candidate (B), as ``variant_compat.py`` does.

Needs ``pip install nncf`` (not a project dependency: the variant is not shipped, see benchmarks/RESULTS.md).

ES_BIOMED_BF16=off .venv/bin/python benchmarks/quant_gate.py build --out runs/quant/ov_int8.xml
ES_BIOMED_BF16=off .venv/bin/python benchmarks/quant_gate.py speed --model runs/quant/ov_int8.xml
ES_BIOMED_BF16=off .venv/bin/python benchmarks/quant_gate.py gate --model runs/quant/ov_int8.xml
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import save

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _export_dir() -> Path:
    from es_biomed.encode.onnx_build import ensure_exported
    from es_biomed.models.catalog import resolve

    return ensure_exported("all-MiniLM-L6-v2", resolve("all-MiniLM-L6-v2"))


def calibration_texts() -> list[str]:
    texts = []
    with open(DATA / "cord19" / "merged_dedup_cord_uid.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec.get("text"):
                texts.append(f"{rec.get('title') or ''} {rec['text']}".strip())
            if len(texts) == 200:
                break
    pq = json.loads((DATA / "pubmedqa" / "ori_pqal.json").read_text())
    for v in list(pq.values())[:100]:
        texts += [v["QUESTION"], " ".join(v["CONTEXTS"])]
    return texts


def build(out: Path) -> None:
    import nncf
    import openvino as ov
    from tokenizers import Tokenizer

    d = _export_dir()
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok.enable_truncation(256)
    model = ov.Core().read_model(str(d / "model.onnx"))
    names = {p.get_any_name() for p in model.inputs}

    def item(text: str) -> dict[str, np.ndarray]:
        e = tok.encode(text)
        ids = np.array([e.ids], dtype=np.int64)
        feats = {"input_ids": ids, "attention_mask": np.array([e.attention_mask], np.int64), "token_type_ids": 0 * ids}
        return {k: v for k, v in feats.items() if k in names}

    texts = calibration_texts()
    t0 = time.perf_counter()
    q = nncf.quantize(
        model,
        nncf.Dataset(texts, item),
        subset_size=len(texts),
        preset=nncf.QuantizationPreset.MIXED,
        model_type=nncf.ModelType.TRANSFORMER,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(q, str(out))
    print(f"quantized in {time.perf_counter() - t0:.1f} s -> {out} (calibration: {len(texts)} texts)")


def candidate(model: Path, name: str = "ov-int8-static") -> Any:
    """The default encoder's export with its OpenVINO model swapped for ``model`` (same tokenizer and pooling)."""
    from es_biomed.encode.onnx_backend import OnnxEncoder

    enc = OnnxEncoder(_export_dir(), name=name, variant="bf16")  # the OpenVINO runtime; ES_BIOMED_BF16=off: fp32
    enc.onnx_file = model
    enc.session = type(enc.session)(enc)
    return enc


def speed(model: Path, rounds: int) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    from es_biomed.corpus.readers import iter_documents, read_queries
    from es_biomed.encode.cpu import cpu_summary
    from es_biomed.encode.onnx_backend import OnnxEncoder
    from es_biomed.models.catalog import resolve

    abstracts = [d.text for _, d in zip(range(256), iter_documents(str(DATA / "scifact"), "beir"), strict=False)]
    claims = list(read_queries(DATA / "scifact" / "queries.jsonl").values())[:512]
    st = SentenceTransformer(str(resolve("all-MiniLM-L6-v2")), device="cpu")
    d = _export_dir()
    ov = OnnxEncoder(d, variant="bf16")  # OpenVINO in bf16 where enabled, else fp32
    runs = {
        "sentence-transformers": lambda t: st.encode(t, batch_size=32, normalize_embeddings=True),
        "onnxruntime fp32": OnnxEncoder(d, variant="fp32").encode,
        f"openvino {ov.precision}": ov.encode,
        "onnxruntime int8 (dynamic)": OnnxEncoder(d, variant="int8").encode,
        "openvino int8 (static, NNCF)": candidate(model).encode,
    }
    per: dict[str, dict[str, list[float]]] = {k: {"abstracts": [], "claims": []} for k in runs}
    outs: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for name, fn in runs.items():
            for kind, texts in (("abstracts", abstracts), ("claims", claims)):
                t0 = time.perf_counter()
                v = fn(texts)
                per[name][kind].append(len(texts) / (time.perf_counter() - t0))
                if kind == "abstracts":
                    outs[name] = np.asarray(v)
    ref = outs["onnxruntime fp32"]
    st_med = {k: statistics.median(per["sentence-transformers"][k]) for k in ("abstracts", "claims")}
    table = {
        name: {
            **{f"{k}_per_s": round(statistics.median(v), 1) for k, v in kinds.items()},
            **{f"{k}_x_st": round(statistics.median(v) / st_med[k], 2) for k, v in kinds.items()},
            "max_abs_diff_vs_fp32": float(np.abs(outs[name] - ref).max()),
        }
        for name, kinds in per.items()
    }
    return {"cpu": cpu_summary(), "rounds": rounds, "table": table}


def gate(model: Path) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    from variant_compat import Crossed

    from es_biomed.corpus.bioasq import load_bioasq, split_by_question
    from es_biomed.encode.memo import CachedEncoder
    from es_biomed.encode.onnx_backend import OnnxEncoder
    from es_biomed.eval.protocols import evaluate_beir, evaluate_bioasq_questions
    from es_biomed.query.presets import default_plan

    encoders = {
        "A": CachedEncoder(OnnxEncoder(_export_dir(), name="fp32", variant="fp32")),
        "B": CachedEncoder(candidate(model)),
    }
    bioasq = str(DATA / "bioasq" / "BioASQ-train-factoid-7b.json")
    _, dev_ids = split_by_question(load_bioasq([bioasq], None).queries, 0.2)
    root = Path(tempfile.mkdtemp(prefix="quant-gate-"))
    rows = []
    for d, q in (("A", "A"), ("B", "B"), ("B", "A"), ("A", "B")):
        enc = Crossed(encoders[d], encoders[q])
        sf = evaluate_beir(str(DATA / "scifact"), root / f"scifact-{d}{q}", enc, default_plan(), "test")
        bq = evaluate_bioasq_questions([bioasq], dev_ids, root / f"bioasq-{d}{q}", enc, default_plan())
        rows.append({
            "documents": d, "queries": q,
            "scifact_ndcg10": {m: round(sf["runs"][m]["NDCG@10"], 4) for m in ("bm25+rerank", "dense", "hybrid")},
            "bioasq_dev_mrr10": {w: round(v["MRR@10"], 4) for w, v in bq["table"]["bm25+rerank"].items()},
        })  # fmt: skip
        print(rows[-1], flush=True)
    ref = rows[0]
    worst = {
        r["documents"] + "/" + r["queries"]: {
            "scifact": round(min(r["scifact_ndcg10"][m] - ref["scifact_ndcg10"][m] for m in ref["scifact_ndcg10"]), 4),
            "bioasq": round(min(r["bioasq_dev_mrr10"][w] - ref["bioasq_dev_mrr10"][w] for w in ref["bioasq_dev_mrr10"]), 4),
        }
        for r in rows[1:]
    }  # fmt: skip
    return {"rows": rows, "worst_drop": worst, "gate": 0.002}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("step", choices=["build", "speed", "gate"])
    ap.add_argument("--model", "--out", dest="model", type=Path, default=Path("runs/quant/ov_int8.xml"))
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.step == "build":
        build(args.model)
        return
    res = speed(args.model, args.rounds) if args.step == "speed" else gate(args.model)
    print(json.dumps(res, indent=2))
    from es_biomed.encode.cpu import bf16_enabled

    name = f"quant_speed_{'bf16' if bf16_enabled() else 'fp32'}" if args.step == "speed" else "quant_gate"
    print(save(name, res))


if __name__ == "__main__":
    main()
