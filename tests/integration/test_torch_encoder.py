"""The default encoder against the reference implementation (sentence-transformers) on the shipped weights."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration

TEXTS = [
    "BRCA1 mutations and breast cancer risk",
    "What is the association of spermidine with α-synuclein neurotoxicity?",
    "a",
    "Alterations of the architecture of cerebral white matter in the developing human brain " * 20,  # > 256 tokens
    "Aspirin inhibits the production of PGE2.",
]


def test_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(minilm.model_dir), device="cpu").encode(TEXTS, normalize_embeddings=True)
    got = minilm.encode_documents(TEXTS, batch_size=2)  # small batches: length sorting and reordering matter
    assert got.dtype == np.float32 and got.shape == (5, 384)
    assert np.abs(got - ref).max() <= 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_identity(minilm):
    info = minilm.info
    assert (info.name, info.dims, info.max_length, info.pooling) == ("all-MiniLM-L6-v2", 384, 256, "mean")
    assert len(info.fingerprint) == 16
    assert minilm.encode_queries([]).shape == (0, 384)


def test_threads_loading_torch_models_at_once_all_succeed():
    """Two searchers that follow an alias swap load the new encoder at the same moment: every load must work
    (transformers fills "meta" weights under process-wide patches; unserialised, a thread got "Cannot copy out of
    meta tensor"), and every copy embeds alike."""
    import threading

    from es_biomed.encode.loading import load_encoder

    barrier, got, errors = threading.Barrier(4), [], []

    def load() -> None:
        barrier.wait()
        try:
            got.append(load_encoder("biomed-minilm").encode_queries(TEXTS[:2]))
        except Exception as exc:  # noqa: BLE001 - the failure is the assertion below
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == [] and len(got) == 4
    assert all(np.array_equal(g, got[0]) for g in got)
