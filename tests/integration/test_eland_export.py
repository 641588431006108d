"""``es-biomed export eland`` with the real eland environment (``.venv-eland``, torch 2.7.1): the shipped
all-MiniLM-L6-v2 as ``text_embedding`` and a cross-encoder built from its weights as ``text_similarity``, checked on
real SciFact texts from ``data/scifact-sample``.

Without the eland environment these tests skip (``make eland-env`` builds it); with ``CI`` (or
``ES_BIOMED_ELAND_REQUIRED``) set they fail instead.
Each export traces the model once (about 20 s on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

pytestmark = pytest.mark.integration

pytest.importorskip("torch")
pytest.importorskip("transformers")

from es_biomed.encode import load_encoder  # noqa: E402
from es_biomed.export.eland_export import (  # noqa: E402
    MANIFEST_FILENAME,
    PARITY_TOLERANCE,
    ElandExportError,
    export_eland,
    find_eland_python,
)
from es_biomed.models.catalog import resolve as resolve_model_path  # noqa: E402
from tests.conftest import REPO  # noqa: E402

SAMPLE = REPO / "data" / "scifact-sample"
TEMPLATE = REPO / "mappings" / "templates" / "es-biomed.json"
EDGE = ["", "a", "What is the association of spermidine with α-synuclein neurotoxicity?"]

# Runs in the eland environment: the traced file reloaded there, fed the main environment's token ids.
_RELOAD = """
import json, sys, torch
job = json.loads(sys.stdin.read())
m = torch.jit.load(job["model"])
ids, mask, types = (torch.tensor(job[k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
with torch.inference_mode():
    out = m(ids, mask, types, torch.arange(ids.size(1)))
print(json.dumps({"torch": torch.__version__, "out": out.tolist()}))
"""


@pytest.fixture(scope="module")
def eland_python():
    try:
        return find_eland_python()
    except ElandExportError as exc:
        if os.environ.get("CI") or os.environ.get("ES_BIOMED_ELAND_REQUIRED"):
            pytest.fail(f"CI needs the eland environment (make eland-env): {exc}")
        pytest.skip(f"no eland environment, build it with `make eland-env`: {exc}")


@pytest.fixture(scope="module")
def scifact():
    claims = [json.loads(x)["text"] for x in (SAMPLE / "queries.jsonl").read_text().splitlines()]
    docs = [json.loads(x) for x in (SAMPLE / "corpus.jsonl").read_text().splitlines()]
    return claims, [f"{d['title']} {d['text']}" for d in docs]


@pytest.fixture(scope="module")
def minilm_export(eland_python, scifact, tmp_path_factory):
    claims, docs = scifact
    probes = EDGE + claims[:48] + docs[:48]  # abstracts longer than 256 tokens included: both sides truncate there
    out = tmp_path_factory.mktemp("eland") / "minilm"
    res = export_eland("all-MiniLM-L6-v2", out, mapping=TEMPLATE, eland_python=eland_python, probes=probes)
    return res, probes


def test_minilm_text_embedding_parity_on_scifact(minilm_export):
    res, probes = minilm_export
    assert res.parity <= PARITY_TOLERANCE
    assert res.dims == 384 and res.normalized is True
    assert res.torch_version.startswith("2.7.1") and res.eland_version.startswith("9.2")
    manifest = json.loads(res.manifest.read_text())
    assert manifest["parity"]["max_abs_diff"] == res.parity and manifest["parity"]["probes"] == len(probes)
    assert manifest["source"]["fingerprint"] == load_encoder("all-MiniLM-L6-v2").fingerprint
    assert manifest["mapping"] == str(TEMPLATE)
    assert "--hub-model-id " + str(resolve_model_path("all-MiniLM-L6-v2")) in manifest["upload_command"]
    assert "--task-type text_embedding" in manifest["upload_command"]
    assert "--max-model-input-length 256" in manifest["upload_command"]
    config = json.loads((res.out / "config.json").read_text())
    task = config["inference_config"]["text_embedding"]
    assert task["embedding_size"] == 384
    assert task["tokenization"]["bert"] == {"max_sequence_length": 256, "do_lower_case": True}
    assert config["model_type"] == "pytorch" and config["input"] == {"field_names": ["text_field"]}
    vocab = json.loads((res.out / "vocabulary.json").read_text())["vocabulary"]
    assert len(vocab) == 30522 and vocab[:1] == ["[PAD]"]
    assert sorted(p.name for p in res.out.iterdir()) == sorted(
        [MANIFEST_FILENAME, "config.json", "traced_pytorch_model.pt", "vocabulary.json"]
    )


def test_traced_file_reloads_in_torch_271(minilm_export, eland_python, scifact):
    """Independently of the export's own probe: the main environment tokenizes, the eland environment's torch
    2.7.1 runs the saved file, and the vectors equal es-biomed's."""
    res, _ = minilm_export
    claims, docs = scifact
    texts = claims[100:108] + docs[100:108]
    enc = load_encoder("all-MiniLM-L6-v2")
    feats = enc.tokenize(texts)
    job = {"model": str(res.out / "traced_pytorch_model.pt"), **{k: v.tolist() for k, v in feats.items()}}
    proc = subprocess.run(
        [str(eland_python), "-c", _RELOAD], input=json.dumps(job), capture_output=True, text=True, check=True
    )
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["torch"].startswith("2.7.1")
    traced = np.asarray(got["out"], dtype=np.float32)
    traced /= np.linalg.norm(traced, axis=1, keepdims=True)
    assert float(np.max(np.abs(traced - enc.encode(texts)))) <= PARITY_TOLERANCE


def test_parity_refusal_names_the_figure_and_leaves_nothing(eland_python, scifact, tmp_path):
    claims, _ = scifact
    out = tmp_path / "refused"
    with pytest.raises(ElandExportError, match=r"differs from es-biomed's TorchEncoder 'all-MiniLM-L6-v2' by \d") as e:
        export_eland("all-MiniLM-L6-v2", out, eland_python=eland_python, probes=claims[:8], tolerance=1e-12)
    assert "more than 1e-12; nothing was written" in str(e.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cross_encoder_text_similarity_parity(eland_python, scifact, tmp_path):
    import torch
    import transformers

    src = resolve_model_path("all-MiniLM-L6-v2")
    cross = tmp_path / "cross-encoder"
    torch.manual_seed(0)  # the classification head is random: a parity test, not a reranker
    model = transformers.BertForSequenceClassification.from_pretrained(str(src), num_labels=1)
    model.save_pretrained(cross)
    transformers.AutoTokenizer.from_pretrained(str(src)).save_pretrained(cross)
    claims, docs = scifact
    pairs = [(claims[i], docs[i]) for i in range(24)] + [(claims[0], ""), ("a", docs[1])]
    res = export_eland(
        str(cross), tmp_path / "out", task_type="text_similarity", eland_python=eland_python, probes=pairs
    )
    assert res.parity <= PARITY_TOLERANCE
    assert res.dims is None and res.normalized is None and res.es_model_id == "cross-encoder"
    config = json.loads((res.out / "config.json").read_text())
    tokenization = config["inference_config"]["text_similarity"]["tokenization"]["bert"]
    assert tokenization["truncate"] == "second" and tokenization["max_sequence_length"] == 512
    manifest = json.loads(res.manifest.read_text())
    assert manifest["parity"]["against"] == "transformers BertForSequenceClassification logits"
    assert "--task-type text_similarity" in manifest["upload_command"]
