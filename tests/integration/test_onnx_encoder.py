"""The ONNX Runtime encoders exported from the shipped weights, against the torch encoder on real SciFact texts.

The exports go to a temporary ``ES_BIOMED_ONNX_DIR`` (about 20 s per model), so the user's cache is not touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.precision]

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("torch")

from es_biomed.encode import load_encoder  # noqa: E402
from es_biomed.encode.onnx_backend import OnnxEncoder  # noqa: E402
from es_biomed.encode.onnx_build import BF16_TOLERANCE, PARITY_TOLERANCE, source_fingerprint  # noqa: E402
from es_biomed.encode.onnx_format import MANIFEST_FILENAME  # noqa: E402
from es_biomed.models.catalog import resolve as resolve_model_path  # noqa: E402
from tests.conftest import REPO  # noqa: E402

EDGE = [
    "",
    "a",
    "What is the association of spermidine with α-synuclein neurotoxicity?",
    "Alterations of the architecture of cerebral white matter in the developing human brain " * 20,  # > 256 tokens
]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    before = os.environ.get("ES_BIOMED_ONNX_DIR")
    path = tmp_path_factory.mktemp("onnx-cache")
    os.environ["ES_BIOMED_ONNX_DIR"] = str(path)
    yield path
    if before is None:
        os.environ.pop("ES_BIOMED_ONNX_DIR", None)
    else:
        os.environ["ES_BIOMED_ONNX_DIR"] = before


@pytest.fixture(scope="module")
def texts(shared_data):
    d = shared_data / "scifact"
    claims = [json.loads(x)["text"] for x in (d / "queries.jsonl").read_text().splitlines()][:300]
    docs = [json.loads(x) for x in (d / "corpus.jsonl").read_text().splitlines()[:96]]
    return EDGE + claims + [f"{o['title']} {o['text']}" for o in docs]


@pytest.fixture(scope="module")
def minilm_onnx(onnx_cache):
    return load_encoder("all-MiniLM-L6-v2-onnx")


@pytest.fixture(scope="module")
def minilm_int8(onnx_cache, minilm_onnx):
    return load_encoder("all-MiniLM-L6-v2-int8")


def test_fp32_matches_torch_on_scifact(minilm, minilm_onnx, texts):
    ref = minilm.encode_documents(texts, batch_size=16)
    got = minilm_onnx.encode_documents(texts, batch_size=16)
    assert got.dtype == np.float32 and got.shape == ref.shape == (len(texts), 384)
    assert np.abs(got - ref).max() <= PARITY_TOLERANCE
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_fp32_inherits_the_torch_identity(minilm, minilm_onnx, onnx_cache):
    assert isinstance(minilm_onnx, OnnxEncoder)
    info, ref = minilm_onnx.info, minilm.info
    assert info.name == "all-MiniLM-L6-v2-onnx"
    assert (info.dims, info.max_length, info.pooling, info.fingerprint) == (
        ref.dims,
        ref.max_length,
        ref.pooling,
        ref.fingerprint,
    )
    export_dir = minilm_onnx.model_dir
    assert export_dir == onnx_cache / f"all-MiniLM-L6-v2-{ref.fingerprint}"
    manifest = json.loads((export_dir / MANIFEST_FILENAME).read_text())
    assert (
        manifest["source_fingerprint"] == ref.fingerprint == source_fingerprint(resolve_model_path("all-MiniLM-L6-v2"))
    )
    assert manifest["variants"]["fp32"]["parity_max_abs_diff"] <= PARITY_TOLERANCE


def test_int8_is_another_encoder_close_to_fp32(minilm_onnx, minilm_int8, texts):
    assert minilm_int8.info.name == "all-MiniLM-L6-v2-int8" and minilm_int8.variant == "int8"
    assert minilm_int8.model_dir == minilm_onnx.model_dir  # one export directory holds both variants
    assert minilm_int8.fingerprint != minilm_onnx.fingerprint
    cos = (minilm_int8.encode(texts) * minilm_onnx.encode(texts)).sum(axis=1)
    assert cos.min() >= 0.97 and cos.mean() >= 0.99


def test_backend_argument_reuses_the_export(minilm_onnx, onnx_cache):
    enc = load_encoder("minilm", backend="onnx", variant="int8")
    assert enc.name == "all-MiniLM-L6-v2-int8" and enc.model_dir == minilm_onnx.model_dir
    assert len(list(onnx_cache.iterdir())) == 1  # exported once, no leftover temporary directory


def test_biomed_minilm_fp32_matches_torch(onnx_cache, texts):
    torch_enc = load_encoder("biomed-minilm")
    enc = load_encoder("biomed-minilm-onnx")
    assert np.abs(enc.encode(texts[:120]) - torch_enc.encode(texts[:120])).max() <= PARITY_TOLERANCE
    assert enc.fingerprint == torch_enc.fingerprint
    assert load_encoder("biomed-minilm-int8").fingerprint not in (enc.fingerprint, torch_enc.fingerprint)


def test_query_path_imports_neither_torch_nor_tensorflow(minilm_onnx, minilm_int8, minilm_bf16, onnx_cache):
    code = (
        "import sys, json\n"
        "from es_biomed.encode import load_encoder\n"
        "out = {}\n"
        "for name in ('all-MiniLM-L6-v2-onnx', 'all-MiniLM-L6-v2-int8', 'all-MiniLM-L6-v2-bf16'):\n"
        "    enc = load_encoder(name)\n"
        "    out[name] = [enc.encode_queries(['aspirin and stroke risk']).shape[1], enc.fingerprint]\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'transformers', 'keras'))\n"
        "print(json.dumps({'heavy': heavy, 'out': out}))\n"
    )
    env = {**os.environ, "ES_BIOMED_ONNX_DIR": str(onnx_cache)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["out"] == {
        "all-MiniLM-L6-v2-onnx": [384, minilm_onnx.fingerprint],
        "all-MiniLM-L6-v2-int8": [384, minilm_int8.fingerprint],
        "all-MiniLM-L6-v2-bf16": [384, minilm_bf16.fingerprint],
    }


def test_index_built_with_torch_accepts_fp32_onnx_and_refuses_int8(minilm, minilm_onnx, minilm_int8, tmp_path):
    from es_biomed.backends import EmbeddedIndex
    from es_biomed.corpus import load_beir
    from es_biomed.errors import EncoderMismatchError
    from es_biomed.ingest import index_documents

    docs = list(load_beir(REPO / "data" / "scifact-sample").corpus.values())[:20]
    index_documents(docs, tmp_path / "idx", minilm)
    index = EmbeddedIndex(tmp_path / "idx")
    index.check_encoder(minilm_onnx.info)
    with pytest.raises(EncoderMismatchError, match="all-MiniLM-L6-v2-int8"):
        index.check_encoder(minilm_int8.info)
    # Same vectors too: the document's stored vector is the fp32 ONNX query vector of its own text.
    query = minilm_onnx.encode_queries([f"{docs[0].title} {docs[0].abstract}"])[0]
    assert index.knn(query, 1)[0].doc_id == docs[0].id


def test_query_encoder_falls_back_to_torch_without_an_export(tmp_path, monkeypatch):
    from es_biomed.encode.loading import load_query_encoder
    from es_biomed.encode.torch_backend import TorchEncoder

    monkeypatch.setenv("ES_BIOMED_ONNX_DIR", str(tmp_path / "empty"))
    assert isinstance(load_query_encoder("all-MiniLM-L6-v2"), TorchEncoder)


def test_reranked_cli_search_runs_without_torch_once_exported(minilm, minilm_onnx, onnx_cache, tmp_path):
    """Issue 10's light query path: an index built with torch, searched through the CLI on the fp32 export with
    the same hits and scores, and without torch, TensorFlow or transformers in the process."""
    from es_biomed.backends import EmbeddedIndex
    from es_biomed.corpus import iter_documents
    from es_biomed.ingest import index_documents
    from es_biomed.query.presets import default_plan
    from tests.conftest import REPO

    path = tmp_path / "ix"
    index_documents(list(iter_documents(REPO / "data" / "scifact-sample"))[:60], path, minilm)
    query = "Ribosomopathies have a low degree of cell and tissue specific pathology."
    plan = default_plan(query, k=5)  # what the CLI runs
    expected = EmbeddedIndex(path).search(plan, minilm.encode_queries([query])[0]).to_json()
    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from es_biomed.cli import main\n"
        f"res = CliRunner().invoke(main, ['search', {query!r}, '--index', {str(path)!r}, '-k', '5', '--json'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'transformers', 'keras'))\n"
        "print(json.dumps({'heavy': heavy, 'code': res.exit_code, 'out': res.output}))\n"
    )
    env = {**os.environ, "ES_BIOMED_ONNX_DIR": str(onnx_cache)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [] and result["code"] == 0, result
    hits = json.loads(result["out"])["hits"]
    assert [h["doc_id"] for h in hits] == [h["doc_id"] for h in expected]
    assert [h["score"] for h in hits] == pytest.approx([h["score"] for h in expected], rel=1e-5)


@pytest.fixture(scope="module")
def minilm_bf16(onnx_cache, minilm_onnx):
    pytest.importorskip("openvino")
    return load_encoder("all-MiniLM-L6-v2-bf16")


def test_bf16_is_close_to_fp32_and_shares_its_identity(minilm, minilm_onnx, minilm_bf16, texts):
    assert minilm_bf16.info.name == "all-MiniLM-L6-v2-bf16" and minilm_bf16.runtime == "openvino"
    assert minilm_bf16.model_dir == minilm_onnx.model_dir  # the fp32 file of the same export
    record = json.loads((minilm_onnx.model_dir / MANIFEST_FILENAME).read_text())["variants"]["bf16"]
    assert record["parity_vs_fp32_max_abs_diff"] <= BF16_TOLERANCE and record["precision"] == minilm_bf16.precision
    # Within the tolerance on the probe texts, bf16 is index-compatible: the torch / fp32 identity.
    assert minilm_bf16.fingerprint == minilm_onnx.fingerprint == minilm.fingerprint
    ref, got = minilm_onnx.encode(texts), minilm_bf16.encode(texts)
    assert got.shape == ref.shape and got.dtype == np.float32
    cos = (ref * got).sum(axis=1)
    # bf16 GEMMs with fp32 accumulation: about 1e-3 per coordinate, cosine above 0.999 (int8's minimum is 0.987).
    assert cos.min() > 0.999 and np.abs(got - ref).max() < 1e-2
    if minilm_bf16.precision == "bf16":  # the CPU has AMX / AVX512-BF16: really another precision
        assert np.abs(got - ref).max() > 1e-5


def test_fast_variants_for_documents_and_queries(minilm_onnx, minilm_bf16, minilm_int8):
    from es_biomed.encode.loading import load_document_encoder, load_query_encoder

    doc = load_document_encoder("all-MiniLM-L6-v2")
    assert (doc.info.name, doc.variant, doc.fingerprint) == ("all-MiniLM-L6-v2-bf16", "bf16", minilm_onnx.fingerprint)
    assert load_document_encoder("all-MiniLM-L6-v2-onnx").variant == "fp32"  # a variant named is the one used
    # An index built with bf16 is queried on ONNX Runtime fp32 (the faster start); int8 only ever by int8.
    for name in ("all-MiniLM-L6-v2-bf16", "all-MiniLM-L6-v2", "minilm-bf16"):
        q = load_query_encoder(name)
        assert (q.info.name, q.variant, q.fingerprint) == ("all-MiniLM-L6-v2-onnx", "fp32", minilm_onnx.fingerprint)
    q = load_query_encoder("all-MiniLM-L6-v2-int8")
    assert (q.variant, q.fingerprint) == ("int8", minilm_int8.fingerprint)


def test_bf16_threads_share_one_compiled_model(minilm_bf16, texts):
    from concurrent.futures import ThreadPoolExecutor

    chunks = [texts[i::4] for i in range(4)]
    alone = [minilm_bf16.encode(c) for c in chunks]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(minilm_bf16.encode, chunks))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


def test_index_built_with_bf16_is_searched_with_fp32(minilm_onnx, minilm_bf16, tmp_path):
    from es_biomed.backends import EmbeddedIndex
    from es_biomed.corpus import load_beir
    from es_biomed.ingest import index_documents
    from es_biomed.search.searcher import Searcher

    docs = list(load_beir(REPO / "data" / "scifact-sample").corpus.values())[:8]
    index_documents(docs, tmp_path / "idx", minilm_bf16)
    EmbeddedIndex(tmp_path / "idx").check_encoder(minilm_onnx.info)
    hits = Searcher(tmp_path / "idx").search(docs[3].title, k=3, mode="dense").hits
    assert hits[0].doc_id == docs[3].id
