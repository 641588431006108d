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

from es_biomed.backends.dialects import DEFAULT_INDEX_OPTIONS, get_dialect
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
    "ce_text_painless",
    "template_priority",
    "TEXT_ANALYZERS",
    "versioned_index",
]

ALIAS = "es-biomed"
TEMPLATE_NAME = "es-biomed"
SEARCH_TEMPLATE_ID = "es-biomed-rescore"
PIPELINE_ID = "es-biomed-embed"


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


#: Text analyzers the index template can use for title / abstract / body: ``english`` (analysis-common), or
#: ``standard`` (built into both engines; token-identical to the embedded engine's ``AnalyzerConfig(stopwords=False,
#: stemmer="")`` on text without possessives, which the parity tests use).
TEXT_ANALYZERS = ("english", "standard")


def template_priority(alias: str) -> int:
    """A priority unique among overlapping patterns: ``<alias>-v*`` patterns of two aliases overlap only when one
    alias extends the other, and then their lengths (hence priorities) differ; the longer, more specific wins."""
    return 100 + len(alias)


def index_template(
    dims: int,
    encoder: dict[str, Any] | None = None,
    index_options: dict[str, Any] | None = None,
    alias: str = ALIAS,
    *,
    engine: str = "elasticsearch",
    analyzer: str = "english",
    default_pipeline: str | None = None,
    shards: int | None = None,
    replicas: int | None = None,
) -> dict[str, Any]:
    """The ``PUT _index_template/<name>`` body, with vector dims and the encoder identity in ``_meta``.

    Args:
        dims: Encoder output dimensionality.
        encoder: Encoder identity (``EncoderInfo.to_dict()``), recorded in the mapping's ``_meta`` so writers
            and searchers can check they use the same encoder.
        index_options: ``dense_vector.index_options`` (default :data:`DEFAULT_INDEX_OPTIONS`); on OpenSearch its
            ``m`` and ``ef_construction`` go to the HNSW ``method.parameters``.
        alias: The alias; the template matches its versioned indices ``<alias>-v*``.
        engine: ``elasticsearch`` (``mappings/templates/``) or ``opensearch`` (``mappings/opensearch/``).
        analyzer: Analyzer of the text fields, one of :data:`TEXT_ANALYZERS`.
        default_pipeline: Set ``index.default_pipeline`` (the in-cluster embedding pipeline).
        shards: ``index.number_of_shards`` (default: the engine's, 1).
        replicas: ``index.number_of_replicas``, in place of the template's ``auto_expand_replicas: 0-1`` (one
            replica where a second node can hold it, so a single node stays green).

    Raises:
        EsBiomedError: an unknown analyzer, fewer than 1 shard or fewer than 0 replicas.

    Example:
        >>> index_template(384, shards=3, replicas=1)["template"]["settings"]
        {'max_rescore_window': 10000, 'refresh_interval': '1s', 'number_of_shards': 3, 'number_of_replicas': 1}
    """
    dialect = get_dialect(engine)
    if analyzer not in TEXT_ANALYZERS:
        raise EsBiomedError(f"analyzer must be one of {TEXT_ANALYZERS}, got {analyzer!r}")
    for name, value, least in (("shards", shards, 1), ("replicas", replicas, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise EsBiomedError(f"{name} must be a whole number >= {least}, got {value!r}")
    body = copy.deepcopy(_load_json(f"{dialect.mappings_folder}/{TEMPLATE_NAME}.json"))
    body["index_patterns"] = [f"{alias}-v*"]
    body["priority"] = template_priority(alias)
    mappings = body["template"]["mappings"]
    props = mappings["properties"]
    props["embedding"] = dialect.vector_mapping(dims, index_options)
    props["passages"]["properties"]["embedding"] = dialect.vector_mapping(dims, index_options)
    for name in ("title", "abstract", "body"):
        props[name]["analyzer"] = analyzer
    props["passages"]["properties"]["text"]["analyzer"] = analyzer
    if encoder is not None:
        mappings["_meta"]["encoder"] = dict(encoder)
    settings = body["template"]["settings"]
    index_settings = settings["index"] if "index" in settings else settings
    if default_pipeline:
        index_settings["default_pipeline"] = default_pipeline
    if shards is not None:
        index_settings["number_of_shards"] = shards
    if replicas is not None:
        index_settings.pop("auto_expand_replicas", None)
        index_settings["number_of_replicas"] = replicas
    return body


def search_template_source(engine: str = "elasticsearch") -> str:
    """The mustache source of the stored search template ``es-biomed-rescore`` (best-passage rescore)."""
    folder = "search_templates" if engine in ("elasticsearch", "es") else "opensearch"
    return (mappings_dir() / folder / f"{SEARCH_TEMPLATE_ID}.mustache").read_text()


def ce_text_painless(doc: str = "ctx") -> str:
    """Painless that sets ``<doc>.ce_text`` to what :func:`~es_biomed.query.cross_stage.document_text` gives
    (``title + ". " + abstract``, or the one that is not empty; nothing when both are): ``ctx`` in an ingest
    pipeline, ``ctx._source`` in a ``_reindex`` script."""
    return (
        f"String t = {doc}.title == null ? '' : {doc}.title; String a = {doc}.abstract == null ? '' : {doc}.abstract; "
        f"if (!t.isEmpty() || !a.isEmpty()) {{ {doc}.ce_text = t.isEmpty() ? a : (a.isEmpty() ? t : t + '. ' + a); }}"
    )


def ingest_pipeline(model_id: str, ce_text: bool = True) -> dict[str, Any]:
    """The in-cluster embedding pipeline for a model uploaded with eland; with ``ce_text`` (Elasticsearch's
    template maps the field; OpenSearch's does not) a script processor tagged ``ce_text`` sets it, second."""
    body = copy.deepcopy(_load_json(f"pipelines/{PIPELINE_ID}.json"))
    if ce_text:
        script = {"tag": "ce_text", "lang": "painless", "source": ce_text_painless()}
        body["processors"].insert(1, {"script": script})
    for proc in body["processors"]:
        if "inference" in proc:
            proc["inference"]["model_id"] = model_id
    return body
