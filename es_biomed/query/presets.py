"""Known-good plan parameters, kept as data (``presets.json``), not code.

``default`` holds the rerank weights tuned on SciFact *train* queries only (``benchmarks/tune_rerank.py``
regenerates it); SciFact test and BioASQ never touch the tuning.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from es_biomed.query.plan import SearchPlan

__all__ = ["load_presets", "default_plan"]


@lru_cache(maxsize=1)
def load_presets() -> dict[str, dict[str, Any]]:
    return json.loads(Path(__file__).with_name("presets.json").read_text())


def default_plan(query: str = "", preset: str = "default", **overrides: Any) -> SearchPlan:
    """A :class:`SearchPlan` with the named preset's parameters, then ``overrides``."""
    params = {k: v for k, v in load_presets().get(preset, {}).items() if not k.startswith("_")}
    if "fields" in params:
        params["fields"] = tuple((f, float(b)) for f, b in params["fields"].items())
    params.update(overrides)
    return SearchPlan(query, **params)
