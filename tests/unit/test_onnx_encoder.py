"""The ONNX Runtime encoder on tiny models written by the tests: error paths, pooling arithmetic, fingerprints.

The tiny model is an embedding lookup (``last_hidden_state = table[input_ids]``) over a 7-word WordPiece vocabulary,
so every pooled vector can be worked out by hand.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
tokenizers = pytest.importorskip("tokenizers")

from onnx import TensorProto, helper  # noqa: E402

from es_biomed.encode import load_encoder  # noqa: E402
from es_biomed.encode.onnx_backend import OnnxEncoder, OnnxModelError, physical_cores  # noqa: E402
from es_biomed.encode.onnx_format import MANIFEST_FILENAME  # noqa: E402
from es_biomed.errors import EsBiomedError  # noqa: E402

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "aspirin", "fever", "stroke"]
# Row i embeds token i: [CLS] and [SEP] are 1 on axis 0, each word is 1 on its own axis (UNK and PAD: zero).
TABLE = np.array(
    [[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
    dtype=np.float32,
)


def write_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    tok = Tokenizer(WordPiece({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.save(str(path))


def write_model(
    path: Path,
    inputs: tuple[str, ...] = ("input_ids", "attention_mask"),
    output: str = "last_hidden_state",
    rank3: bool = True,
    table: np.ndarray = TABLE,
) -> None:
    """``output = Gather(table, input_ids)`` (``[b, s, 4]``), or its ``ReduceMean`` over s when ``rank3`` is false."""
    graph_inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in inputs]
    ids = inputs[0]
    nodes = [helper.make_node("Gather", ["table", ids], ["hidden" if not rank3 else output])]
    if not rank3:
        nodes.append(helper.make_node("ReduceMean", ["hidden"], [output], axes=[1], keepdims=0))
    shape = ["batch", "sequence", 4] if rank3 else ["batch", 4]
    graph = helper.make_graph(
        nodes,
        "tiny",
        graph_inputs,
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)],
        initializer=[helper.make_tensor("table", TensorProto.FLOAT, table.shape, table.flatten().tolist())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    write_tokenizer(tmp_path / "tokenizer.json")
    write_model(tmp_path / "model.onnx")
    return tmp_path


def test_mean_pooling_by_hand(tiny):
    enc = OnnxEncoder(tiny, max_length=8)
    assert enc.dims == 4 and enc.pooling == "mean" and enc.threads == physical_cores()
    got = enc.encode(["aspirin", "Aspirin fever", "unknownword"], batch_size=2)
    # "aspirin": [CLS] aspirin [SEP] -> mean (2/3, 1/3, 0, 0) -> unit (2, 1, 0, 0)/sqrt(5).
    # "aspirin fever": mean (2, 1, 1, 0)/4 -> (2, 1, 1, 0)/sqrt(6); the padding of the first row in its batch is masked.
    # "unknownword": [CLS] [UNK] [SEP] -> (2, 0, 0, 0)/3 -> (1, 0, 0, 0).
    expected = np.array([[2, 1, 0, 0], [2, 1, 1, 0], [1, 0, 0, 0]], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_cls_and_max_pooling(tiny):
    assert np.allclose(OnnxEncoder(tiny, pooling="cls").encode(["stroke"]), [[1, 0, 0, 0]])
    got = OnnxEncoder(tiny, pooling="max").encode(["stroke fever"])
    np.testing.assert_allclose(got, [[1, 0, 1, 1]] / np.sqrt(3), atol=1e-6)


def test_empty_and_overlong_texts(tiny):
    enc = OnnxEncoder(tiny, max_length=4)
    assert enc.encode([]).shape == (0, 4)
    got = enc.encode(["", "stroke " * 50])
    assert got.shape == (2, 4) and got.dtype == np.float32
    # "" -> [CLS] [SEP]; the long text is cut to [CLS] stroke stroke [SEP] (max_length counts the specials).
    np.testing.assert_allclose(got, [[1, 0, 0, 0], [np.sqrt(0.5), 0, 0, np.sqrt(0.5)]], atol=1e-6)
    assert enc.tokenize(["stroke " * 50])["input_ids"].shape == (1, 4)


def test_token_type_ids_fed_when_the_model_takes_them(tmp_path):
    write_tokenizer(tmp_path / "tokenizer.json")
    write_model(tmp_path / "model.onnx", inputs=("input_ids", "attention_mask", "token_type_ids"))
    enc = OnnxEncoder(tmp_path)
    assert sorted(enc.tokenize(["fever"])) == ["attention_mask", "input_ids", "token_type_ids"]
    assert enc.encode(["fever"]).shape == (1, 4)


def test_missing_onnx_file(tmp_path):
    write_tokenizer(tmp_path / "tokenizer.json")
    with pytest.raises(OnnxModelError, match=re.escape(f"{tmp_path / 'model.onnx'}: no such ONNX file")):
        OnnxEncoder(tmp_path)
    with pytest.raises(OnnxModelError, match=re.escape(f"{tmp_path / 'model_int8.onnx'}: no such ONNX file")):
        OnnxEncoder(tmp_path, variant="int8")


def test_corrupt_onnx_file(tiny):
    (tiny / "model.onnx").write_bytes(b"\x08\x07this is not a protobuf" * 10)
    with pytest.raises(OnnxModelError, match=re.escape(f"{tiny / 'model.onnx'}: not a loadable ONNX model")):
        OnnxEncoder(tiny)


def test_truncated_onnx_file(tiny):
    data = (tiny / "model.onnx").read_bytes()
    (tiny / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxModelError, match=re.escape(str(tiny / "model.onnx"))):
        OnnxEncoder(tiny)


def test_input_names_must_match_the_tokenizer(tmp_path):
    write_tokenizer(tmp_path / "tokenizer.json")
    write_model(tmp_path / "model.onnx", inputs=("input_word_ids", "input_mask"))
    with pytest.raises(OnnxModelError, match=re.escape("input 'input_word_ids' (tensor(int64)")) as err:
        OnnxEncoder(tmp_path)
    assert str(tmp_path / "model.onnx") in str(err.value) and "expected inputs input_ids and attention_mask" in str(
        err.value
    )


def test_attention_mask_input_required(tmp_path):
    write_tokenizer(tmp_path / "tokenizer.json")
    write_model(tmp_path / "model.onnx", inputs=("input_ids",))
    with pytest.raises(OnnxModelError, match=re.escape("missing input(s) attention_mask")):
        OnnxEncoder(tmp_path)


def test_output_must_be_token_vectors(tmp_path):
    write_tokenizer(tmp_path / "tokenizer.json")
    write_model(tmp_path / "model.onnx", output="sentence_embedding", rank3=False)
    with pytest.raises(
        OnnxModelError, match=re.escape("outputs sentence_embedding (tensor(float), shape ['batch', 4])")
    ):
        OnnxEncoder(tmp_path)


def test_missing_or_corrupt_tokenizer(tmp_path):
    write_model(tmp_path / "model.onnx")
    with pytest.raises(OnnxModelError, match=re.escape(f"{tmp_path / 'tokenizer.json'}: missing")):
        OnnxEncoder(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(OnnxModelError, match=re.escape(f"{tmp_path / 'tokenizer.json'}: not a usable tokenizer.json")):
        OnnxEncoder(tmp_path)


def test_dims_must_match_the_manifest(tiny):
    (tiny / MANIFEST_FILENAME).write_text(json.dumps({"dims": 384, "pooling": "mean", "max_length": 16}))
    with pytest.raises(OnnxModelError, match=re.escape("output width 4 differs from the 384 recorded")):
        OnnxEncoder(tiny)


def test_fingerprint_is_the_manifest_one_only_for_the_exported_bytes(tiny):
    from es_biomed.models.files import fingerprint_files

    own = OnnxEncoder(tiny).fingerprint
    assert len(own) == 16
    sha = fingerprint_files([tiny / "model.onnx"], {})
    manifest = {
        "dims": 4,
        "pooling": "mean",
        "max_length": 512,
        "variants": {"fp32": {"sha": sha, "fingerprint": "f" * 16}},
    }
    (tiny / MANIFEST_FILENAME).write_text(json.dumps(manifest))
    assert OnnxEncoder(tiny).fingerprint == "f" * 16
    # Other settings than exported: not the recorded encoder any more.
    assert OnnxEncoder(tiny, max_length=8).fingerprint not in ("f" * 16, own)
    # A different file under the exported name: its own fingerprint, never the recorded one.
    write_model(tiny / "model.onnx", inputs=("input_ids", "attention_mask", "token_type_ids"))
    assert OnnxEncoder(tiny).fingerprint not in ("f" * 16, own)


def test_load_encoder_dispatches_onnx_paths(tiny):
    enc = load_encoder(str(tiny))
    assert isinstance(enc, OnnxEncoder) and enc.name == str(tiny)
    assert isinstance(load_encoder(str(tiny / "model.onnx")), OnnxEncoder)
    with pytest.raises(EsBiomedError, match="no model.onnx"):
        load_encoder(str(tiny.parent), backend="onnx")


def test_registered_backend_must_fit():
    with pytest.raises(EsBiomedError, match=re.escape("'biomed-minilm' has a torch backend, not 'tf'")):
        load_encoder("biomed-minilm", backend="tf")


def test_onnx_entries_are_registered():
    from es_biomed.encode import known_encoders
    from es_biomed.encode.loading import DEFAULT_ENCODER

    assert {"all-MiniLM-L6-v2-onnx", "all-MiniLM-L6-v2-int8", "biomed-minilm-onnx", "biomed-minilm-int8"} <= set(
        known_encoders()
    )
    assert DEFAULT_ENCODER == "all-MiniLM-L6-v2"


def test_error_pickles_and_is_a_value_error(tmp_path):
    err = OnnxModelError(f"{tmp_path}/model.onnx: no such ONNX file")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, ValueError) and isinstance(back, EsBiomedError) and str(back) == str(err)


def test_token_budget_slices_give_the_same_vectors(tiny):
    texts = ["stroke " * 9, "fever aspirin", "", "aspirin " * 5, "fever"]
    whole = OnnxEncoder(tiny, max_batch_tokens=10**6).encode(texts, batch_size=5)
    # 11 tokens in the longest row: a budget of 12 runs one row at a time, each cut to its own length.
    sliced = OnnxEncoder(tiny, max_batch_tokens=12).encode(texts, batch_size=5)
    np.testing.assert_allclose(sliced, whole, atol=1e-7)
    assert sliced.shape == (5, 4)


def test_vocabulary_larger_than_the_embedding_table(tmp_path):
    write_tokenizer(tmp_path / "tokenizer.json")
    write_model(tmp_path / "model.onnx", table=TABLE[:2])  # [CLS] = 2 is out of range for a 2-row table
    with pytest.raises(
        OnnxModelError, match=re.escape(f"{tmp_path / 'model.onnx'}: running the model on the tokenizer")
    ):
        OnnxEncoder(tmp_path)


def test_no_export_and_no_torch_says_what_to_install(tmp_path, monkeypatch):
    from es_biomed.encode import onnx_build as onnx_export
    from es_biomed.errors import MissingDependencyError
    from es_biomed.models import cache

    src = tmp_path / "hf"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"hidden_size": 4, "model_type": "bert"}))
    (src / "model.safetensors").write_bytes(b"weights")
    monkeypatch.setenv("ES_BIOMED_ONNX_DIR", str(tmp_path / "cache"))

    def no_torch(module: str, extra: str):
        raise MissingDependencyError(f"{module!r} is required")

    monkeypatch.setattr(cache, "require", no_torch)  # the one "build on first use" checks what it needs
    key = onnx_export.source_fingerprint(src)
    with pytest.raises(MissingDependencyError, match=re.escape(f"{tmp_path / 'cache' / ('tiny-' + key)} yet")) as err:
        onnx_export.ensure_exported("tiny", src)
    assert "pip install 'es-biomed[torch,onnx]'" in str(err.value)
    assert not (tmp_path / "cache").exists()


# -- the bf16 variant: the same export on OpenVINO -----------------------------------------------------------------


def test_openvino_runtime_pools_by_hand(tiny):
    pytest.importorskip("openvino")
    enc = OnnxEncoder(tiny, variant="bf16", max_length=8)
    assert enc.runtime == "openvino" and enc.onnx_file == tiny / "model.onnx" and enc.dims == 4
    assert enc.precision in ("bf16", "fp32")  # fp32 where the CPU has no bf16 instructions
    got = enc.encode(["aspirin", "Aspirin fever", "unknownword"], batch_size=2)
    expected = np.array([[2, 1, 0, 0], [2, 1, 1, 0], [1, 0, 0, 0]], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-2)  # 0, 1/3, 2/3 and their means are exact to bf16's 8 bits
    assert enc.fingerprint != OnnxEncoder(tiny).fingerprint  # a different encoder from the same file on ORT


def test_openvino_rejects_a_corrupt_file_naming_it(tiny):
    pytest.importorskip("openvino")
    (tiny / "model.onnx").write_bytes(b"\x08\x07this is not a protobuf" * 10)
    with pytest.raises(OnnxModelError, match=re.escape(f"{tiny / 'model.onnx'}: OpenVINO cannot compile")):
        OnnxEncoder(tiny, variant="bf16")


def test_openvino_checks_the_signature(tmp_path):
    pytest.importorskip("openvino")
    write_tokenizer(tmp_path / "tokenizer.json")
    write_model(tmp_path / "model.onnx", rank3=False)
    with pytest.raises(OnnxModelError, match="do not match; expected"):
        OnnxEncoder(tmp_path, variant="bf16")


def test_unknown_variant(tiny):
    with pytest.raises(OnnxModelError, match=r"variant must be one of \('fp32', 'int8', 'bf16'\), got 'fp16'"):
        OnnxEncoder(tiny, variant="fp16")  # type: ignore[arg-type]


def test_threads_from_the_environment(tiny, monkeypatch):
    monkeypatch.setenv("ES_BIOMED_THREADS", "1")
    assert OnnxEncoder(tiny).threads == 1
    assert OnnxEncoder(tiny, threads=2).threads == 2  # an explicit count wins
    monkeypatch.delenv("ES_BIOMED_THREADS")
    assert OnnxEncoder(tiny).threads == physical_cores()
