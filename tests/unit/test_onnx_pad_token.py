"""The ONNX encoder pads with the model's own padding token (MPNet: ``<pad>`` id 1, though ``[PAD]`` is in its vocab).

Tiny vocabulary in MPNet's layout: ``<s> <pad> </s> [UNK] [PAD] aspirin fever``; the model is the embedding lookup of
``tests/unit/test_onnx_encoder.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from es_biomed.encode.onnx_backend import OnnxEncoder  # noqa: E402
from es_biomed.encode.onnx_format import MANIFEST_FILENAME  # noqa: E402
from tests.unit.test_onnx_encoder import write_model  # noqa: E402

VOCAB = ["<s>", "<pad>", "</s>", "[UNK]", "[PAD]", "aspirin", "fever"]
TABLE = np.array(
    [[1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],
    dtype=np.float32,
)


def write_tokenizer(path: Path, padding: str | None) -> None:
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    tok = Tokenizer(WordPiece({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    if padding:
        tok.enable_padding(pad_id=VOCAB.index(padding), pad_token=padding, length=16)  # as transformers saves it
    tok.save(str(path))


@pytest.mark.parametrize(
    ("manifest_pad", "tokenizer_pad", "pad_id"),
    [
        ("<pad>", None, 1),  # recorded at export (transformers' tokenizer.pad_token)
        (None, "<pad>", 1),  # tokenizer.json's own padding settings
        (None, None, 4),  # neither: the conventional [PAD] (BERT vocabularies)
    ],
)
def test_pads_with_the_models_token(tmp_path, manifest_pad, tokenizer_pad, pad_id):
    write_tokenizer(tmp_path / "tokenizer.json", tokenizer_pad)
    write_model(tmp_path / "model.onnx", table=TABLE)
    if manifest_pad:
        (tmp_path / MANIFEST_FILENAME).write_text(json.dumps({"pad_token": manifest_pad}))
    enc = OnnxEncoder(tmp_path)
    ids = enc.tokenize(["aspirin fever", "fever"])["input_ids"]
    # Padded to the longest row only (not to tokenizer.json's fixed length 16), with the model's padding id.
    assert ids.tolist() == [[0, 5, 6, 2], [0, 6, 2, pad_id]]
    # The padding is masked out of the mean either way: "fever" -> (<s> + fever + </s>) / 3 -> (2, 0, 1, 0).
    expected = np.array([2, 0, 1, 0], dtype=np.float32) / np.sqrt(5)
    np.testing.assert_allclose(enc.encode(["aspirin fever", "fever"])[1], expected, atol=1e-6)
