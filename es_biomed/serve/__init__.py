"""``es-biomed serve``: the search and answers service (FastAPI on uvicorn) and its web page.

Needs the ``serve`` extra (``pip install 'es-biomed[serve]'``). The names below are imported on first use, so
``import es_biomed.serve`` (and the CLI) stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "load_state", "Highlighter", "ParamError", "plan_from_params", "plan_from_body"]

_WHERE = {
    "create_app": "es_biomed.serve.app",
    "load_state": "es_biomed.serve.app",
    "Highlighter": "es_biomed.serve.highlight",
    "ParamError": "es_biomed.serve.schemas",
    "plan_from_params": "es_biomed.serve.schemas",
    "plan_from_body": "es_biomed.serve.schemas",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'es_biomed.serve' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
