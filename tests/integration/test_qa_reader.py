"""The shipped biomed-qa reader: package data, fp16 under 50 MB, ONNX export on first use, ONNX = torch, and the
gold-context score on held-out BioASQ 7b questions."""

from __future__ import annotations

import json
import struct

import pytest

from es_biomed.qa import load_reader
from es_biomed.qa.loading import known_readers, resolve_reader_path
from es_biomed.qa.onnx import MANIFEST_FILENAME, QA_PARITY_TOLERANCE

pytestmark = pytest.mark.integration

BIOASQ_7B = "bioasq/BioASQ-train-factoid-7b.json"


def safetensors_dtypes(path) -> set[str]:
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}


def test_biomed_qa_ships_fp16_under_50_mb_with_its_provenance():
    assert known_readers() == ["biomed-qa"]
    name, path = resolve_reader_path("biomed-qa")
    weights = path / "model.safetensors"
    assert name == "biomed-qa" and weights.stat().st_size < 50 * 1024 * 1024
    assert safetensors_dtypes(weights) == {"F16"}
    assert json.loads((path / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]
    meta = json.loads((path / "training_meta.json").read_text())
    assert meta["split"]["function"] == "es_biomed.corpus.bioasq.split_by_question"
    assert meta["split"]["dev_fraction"] == 0.2 and meta["split"]["dev_questions"] == 109
    assert meta["data"]["path"].endswith("BioASQ-train-factoid-7b.json")
    assert meta["checks"]["tf_vs_torch_fp32_max_abs_logit_diff"] < 1e-4
    assert "4b-6b test sets were never used" in (path / "NOTICE").read_text()


@pytest.fixture(scope="module")
def fresh_onnx(tmp_path_factory):
    """biomed-qa exported on first use into an empty cache (the user's cache is left alone)."""
    mp = pytest.MonkeyPatch()
    cache = tmp_path_factory.mktemp("onnx-cache")
    mp.setenv("ES_BIOMED_ONNX_DIR", str(cache))
    pytest.importorskip("torch")
    reader = load_reader("biomed-qa", runtime="onnx")
    yield reader, cache
    mp.undo()


def test_onnx_export_on_first_use_then_reused(fresh_onnx):
    reader, cache = fresh_onnx
    (export,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert reader.runtime == "onnx" and reader.onnx_dir == export and export.name.startswith("biomed-qa-")
    manifest = json.loads((export / MANIFEST_FILENAME).read_text())
    assert manifest["outputs"] == ["start_logits", "end_logits"]
    assert manifest["parity_max_abs_logit_diff"] <= QA_PARITY_TOLERANCE
    before = (export / "model.onnx").stat().st_mtime_ns
    again = load_reader("biomed-qa", runtime="onnx")
    assert again.onnx_dir == export and (export / "model.onnx").stat().st_mtime_ns == before


@pytest.fixture(scope="module")
def dev_examples(shared_data):
    from es_biomed.corpus.tasks import read_squad, split_questions

    _, dev = split_questions(read_squad(shared_data / BIOASQ_7B), 0.2)
    return dev


def test_onnx_and_torch_read_the_same_spans(fresh_onnx, dev_examples):
    onnx_reader, _ = fresh_onnx
    torch_reader = load_reader("biomed-qa", runtime="torch")
    for ex in dev_examples[:12]:
        a = onnx_reader.read(ex.question, [ex.context], null_threshold=None)[0][:5]
        b = torch_reader.read(ex.question, [ex.context], null_threshold=None)[0][:5]
        assert [(s.start, s.end) for s in a] == [(s.start, s.end) for s in b]
        assert max(abs(x.score - y.score) for x, y in zip(a, b, strict=True)) < 1e-3


def test_reader_runs_without_torch_from_the_export(fresh_onnx, tmp_path):
    """With torch, TensorFlow and transformers blocked, biomed-qa answers on ONNX Runtime from its cached export;
    with an empty cache it names the install line instead."""
    from tests.unit.test_packaging import run_blocked

    _, cache = fresh_onnx
    code = """
        import os
        os.environ["ES_BIOMED_ONNX_DIR"] = {cache!r}
        from es_biomed.qa import load_reader
        try:
            r = load_reader("biomed-qa")
        except ImportError as exc:
            print("ImportError:", exc)
        else:
            ctx = "Flumazenil reverses benzodiazepine sedation in adults."
            spans = r.read("Which drug reverses benzodiazepine sedation?", [ctx])[0]
            print(r.runtime, ctx[spans[0].start : spans[0].end])
        # (the None placeholder es_biomed.train.tf puts in sys.modules to keep TF's symbols local is not TF)
        print(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED and sys.modules[m] is not None))
    """
    proc = run_blocked(code.format(cache=str(cache)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["onnx Flumazenil", "[]"]
    empty = run_blocked(code.format(cache=str(tmp_path / "empty-cache")))
    assert empty.returncode == 0, empty.stderr
    assert "has no ONNX export" in empty.stdout and "pip install 'es-biomed[torch,onnx]'" in empty.stdout
