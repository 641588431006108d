"""Live Elasticsearch tier: runs only when ES_URL is set (the Elasticsearch backend issue adds the tests)."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("ES_URL"):
        return
    skip = pytest.mark.skip(reason="ES_URL is not set: live Elasticsearch tests need a cluster")
    for item in items:
        if "live_es" in str(item.fspath):
            item.add_marker(skip)
