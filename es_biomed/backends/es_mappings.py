"""Load the Elasticsearch data files in ``mappings/`` (index template, search template, ingest pipeline).

The files live at the repo root (``mappings/``) and are installed to ``<prefix>/share/es-biomed/mappings``
by a wheel; code fills in what depends on the encoder (vector dims, ``_meta``, the model id).
"""

from __future__ import annotations

import copy
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from es_biomed.errors import EsBiomedError

__all__ = [
    "ALIAS",
    "TEMPLATE_NAME",
    "SEARCH_TEMPLATE_ID",
    "PIPELINE_ID",
    "DEFAULT_INDEX_OPTIONS",
    "mappings_dir",
    "index_template",
    "search_template_source",
    "ingest_pipeline",
    "opensearch_index",
    "versioned_index",
]

ALIAS = "es-biomed"
TEMPLATE_NAME = "es-biomed"
SEARCH_TEMPLATE_ID = "es-biomed-rescore"
PIPELINE_ID = "es-biomed-embed"
#: HNSW over int8-quantized vectors: 4x smaller than float, recall close to float for 384-dim MiniLM.
DEFAULT_INDEX_OPTIONS: dict[str, Any] = {"type": "int8_hnsw", "m": 16, "ef_construction": 100}


def mappings_dir() -> Path:
    """The ``mappings/`` folder: the repo checkout's, else the one a wheel installed under ``share/``."""
    for candidate in (
        Path(__file__).resolve().parents[2] / "mappings",
        Path(sys.prefix) / "share" / "es-biomed" / "mappings",
    ):
        if (candidate / "templates").is_dir():
            return candidate
    raise EsBiomedError("mappings/ not found: reinstall es-biomed, or run from a checkout of the repository")


@cache
def _load_json(rel: str) -> dict[str, Any]:
    return json.loads((mappings_dir() / rel).read_text())


def versioned_index(alias: str, version: int) -> str:
    """``es-biomed`` + 3 -> ``es-biomed-v3``."""
    return f"{alias}-v{version}"


def _set_vectors(props: dict[str, Any], dims: int, index_options: dict[str, Any] | None) -> None:
    for field in (props["embedding"], props["passages"]["properties"]["embedding"]):
        field["dims"] = dims
        field["index_options"] = dict(index_options or DEFAULT_INDEX_OPTIONS)


def index_template(
    dims: int, encoder: dict[str, Any] | None = None, index_options: dict[str, Any] | None = None, alias: str = ALIAS
) -> dict[str, Any]:
    """The ``PUT _index_template/<name>`` body, with vector dims and the encoder identity in ``_meta``.

    Args:
        dims: Encoder output dimensionality.
        encoder: Encoder identity (``EncoderInfo.to_dict()``), recorded in the mapping's ``_meta`` so writers
            and searchers can check they use the same encoder.
        index_options: ``dense_vector.index_options`` (default :data:`DEFAULT_INDEX_OPTIONS`).
        alias: The alias; the template matches ``<alias>-*``.
    """
    body = copy.deepcopy(_load_json("templates/es-biomed.json"))
    body["index_patterns"] = [f"{alias}-*"]
    mappings = body["template"]["mappings"]
    _set_vectors(mappings["properties"], dims, index_options)
    if encoder is not None:
        mappings["_meta"]["encoder"] = dict(encoder)
    return body


def search_template_source() -> str:
    """The mustache source of the stored search template ``es-biomed-rescore``."""
    return (mappings_dir() / "search_templates" / f"{SEARCH_TEMPLATE_ID}.mustache").read_text()


def ingest_pipeline(model_id: str) -> dict[str, Any]:
    """The in-cluster embedding pipeline for a model uploaded with eland."""
    body = copy.deepcopy(_load_json(f"pipelines/{PIPELINE_ID}.json"))
    for proc in body["processors"]:
        if "inference" in proc:
            proc["inference"]["model_id"] = model_id
    return body


def opensearch_index(dims: int) -> dict[str, Any]:
    """The OpenSearch index body (``index.knn: true``, ``knn_vector``)."""
    body = copy.deepcopy(_load_json("opensearch/es-biomed-index.json"))
    body["mappings"]["properties"]["embedding"]["dimension"] = dims
    return body
