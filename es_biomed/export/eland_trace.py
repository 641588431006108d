"""Trace a model with eland and probe the saved TorchScript file; runs inside the eland environment (``.venv-eland``).

This file is run as a script by :func:`es_biomed.export.eland_export.export_eland` with the eland environment's
python, whose torch is the one eland pins (the libtorch of the Elasticsearch release). It imports only the standard
library, numpy, torch, transformers and eland, never es_biomed (which is not installed there).

It reads one JSON job on stdin::

    {"model_dir": "...", "out": "...", "task_type": "text_embedding" | "text_similarity",
     "es_version": [9, 2, 0], "max_model_input_size": 256 | null,
     "probes": ["text", ...] | [["query", "document"], ...], "probe_out": "probe.npy", "batch_size": 16}

and writes what eland uploads into ``out``: ``traced_pytorch_model.pt`` (eland's traced, frozen TorchScript model;
nothing quantized), ``config.json`` (the trained-model configuration eland sends, ``NlpTrainedModelConfig.to_dict()``)
and ``vocabulary.json``. Then it reloads the ``.pt`` file with ``torch.jit.load``, runs the probes through it in
batches (inputs as eland traced them: ids, mask, token types and 1-D position ids for BERT-like tokenizers) and saves
the outputs to ``probe_out`` (``[n, dims]`` for text_embedding, ``[n]`` scores for text_similarity). The last line of
stdout is a JSON object with the versions used, the file names, the output dims and the tokenization settings.
"""

from __future__ import annotations

import json
import os
import sys


def _tokenization(config: dict) -> dict:
    """The tokenization settings of an eland config: ``{"bert": {...}}`` inside the task's inference config."""
    task = next(iter(config["inference_config"].values()))
    return next(iter(task["tokenization"].values()))


def _probe(job: dict, model_file: str, config: dict):
    import numpy as np
    import torch
    import transformers

    tok_cfg = _tokenization(config)
    max_length = int(tok_cfg["max_sequence_length"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(job["model_dir"], local_files_only=True)
    traced = torch.jit.load(model_file, map_location="cpu")
    traced.eval()
    arity = len(list(traced.graph.inputs())) - 1  # minus self
    pairs = job["task_type"] == "text_similarity"
    probes = job["probes"]
    batch = int(job.get("batch_size", 16))
    outputs = []
    for start in range(0, len(probes), batch):
        chunk = probes[start : start + batch]
        if pairs:
            enc = tokenizer(
                [p[0] for p in chunk],
                [p[1] for p in chunk],
                padding=True,
                truncation="only_second",
                max_length=max_length,
                return_tensors="pt",
            )
        else:
            enc = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        types = enc.get("token_type_ids")
        if types is None:
            types = torch.zeros_like(ids)
        positions = torch.arange(ids.size(1), dtype=torch.long)
        args = (ids, mask, types, positions)[:arity]
        with torch.inference_mode():
            out = traced(*args)
        if isinstance(out, (tuple, list)):
            out = out[0]
        out = out.float()
        outputs.append(out[:, 0] if pairs else out)
    result = torch.cat(outputs).numpy().astype(np.float32)
    np.save(job["probe_out"], result)
    return result, max_length, tok_cfg


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    job = json.loads(sys.stdin.read())

    import eland  # type: ignore[import-not-found]
    import sentence_transformers
    import torch
    import transformers
    from eland.ml.pytorch.transformers import TransformerModel  # type: ignore[import-not-found]

    torch.manual_seed(0)
    os.makedirs(job["out"], exist_ok=True)
    tm = TransformerModel(
        model_id=job["model_dir"],
        task_type=job["task_type"],
        es_version=tuple(job["es_version"]) if job.get("es_version") else None,
        quantize=False,
        max_model_input_size=job.get("max_model_input_size"),
    )
    model_file, config_obj, vocab_file = tm.save(job["out"])
    config = config_obj.to_dict()
    config_file = os.path.join(job["out"], "config.json")
    with open(config_file, "w") as f:
        json.dump(config, f, indent=2)
    result, max_length, tok_cfg = _probe(job, model_file, config)
    task = next(iter(config["inference_config"].values()))
    report = {
        "torch_version": torch.__version__,
        "eland_version": eland.__version__,
        "transformers_version": transformers.__version__,
        "sentence_transformers_version": sentence_transformers.__version__,
        "files": {
            "model": os.path.basename(model_file),
            "config": os.path.basename(config_file),
            "vocabulary": os.path.basename(vocab_file),
        },
        "dims": int(result.shape[1]) if result.ndim == 2 else None,
        "embedding_size": task.get("embedding_size"),
        "max_sequence_length": max_length,
        "tokenization": tok_cfg,
        "probes": int(result.shape[0]),
    }
    sys.stdout.write("\n" + json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
