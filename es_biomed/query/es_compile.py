"""Compile a :class:`~es_biomed.query.plan.SearchPlan` to an Elasticsearch (or OpenSearch) ``_search`` body.

The body is built with ``elasticsearch.dsl`` (``Search``, ``Q``) and its ``to_dict()`` is the only output.
``elasticsearch.dsl`` has no rescore class, so :class:`Rescore` is a small typed helper that plugs in through
``Search.extra(rescore=...)``.

Mapping of plan modes (Elasticsearch dialect):

* ``bm25``: ``multi_match`` over the weighted fields (``type`` = the plan's ``match_type``), filters in
  ``bool.filter``.
* ``rerank``: the same, plus ``rescore`` with ``window_size`` and a ``script_score`` of
  ``cosineSimilarity(params.query_vector, '<field>') + 1.0``. The rescore query matches only documents that
  have a vector (``exists``), so a document without one keeps ``query_weight * bm25``, as in the embedded
  engine; the script also guards ``doc[...].size() == 0``. With ``passages=True`` the rescore is a ``nested``
  query over ``passages`` with ``score_mode: max``: a document scores by its best passage.
* ``dense``: top-level ``knn``. It is *approximate* (HNSW over int8-quantized vectors, per shard), unlike the
  embedded engine's exact kNN; ``num_candidates`` = :func:`knn_candidates` (10x ``k``, at least 100) and
  ``rescore_vector.oversample`` re-rank the quantized candidates with the float vectors, which brings it within
  0.01 NDCG@10 of exact kNN on SciFact (README).
* ``hybrid``: an ``rrf`` retriever over a ``standard`` (BM25) and a ``knn`` retriever. Elasticsearch refuses it
  without an Enterprise or trial license; the cluster backend then fuses client-side (same RRF arithmetic).
* ``hybrid_rerank``: the ``rrf`` retriever wrapped in a ``rescorer`` retriever (the ``rrf`` retriever rejects
  ``rescore``).
* ``rerank_ce``: the ``rerank`` search as a ``rescorer`` retriever (``standard`` BM25 retriever plus the same
  ``rescore``) inside a ``text_similarity_reranker`` retriever (``rank_window_size`` = ``ce_window``, the
  ``inference_id`` of a ``rerank`` endpoint, :func:`rerank_inference_id`; :func:`rerank_endpoint_request` creates
  it). With ``ce_weight < 1`` a ``linear`` retriever mixes the reranker and the rescorer, both ``minmax``
  normalized, with weights ``ce_weight`` and ``1 - ce_weight`` (the embedded engine's formula,
  :mod:`es_biomed.query.cross_stage`). The model reads one document field, :data:`CE_TEXT_FIELD` (``ce_field``
  overrides it), which must hold ``title + ". " + abstract`` as :func:`~es_biomed.query.cross_stage.document_text`
  builds it: a runtime field in the request would not do, as the retriever's inner searches do not carry the
  request's ``runtime_mappings``. Elasticsearch returns at most ``rank_window_size`` hits, so ``k`` must not exceed
  ``ce_window``. It needs an Enterprise or trial license and the ML / inference modules.

OpenSearch dialect: ``rerank`` rescores with the k-NN plugin's Painless
``1.0 + cosineSimilarity(params.query_value, doc['<field>'])`` (or its ``knn_score`` script), with the same
``nested`` best-passage form; ``dense`` is the ``knn`` query (Lucene engine; ``k`` = :func:`knn_candidates`, and
``size`` cuts to the plan's ``k``), inside a ``nested`` query for passages. ``hybrid`` needs the neural-search
plugin's search pipeline, so the body is refused here and the cluster backend fuses client-side. ``rerank_ce`` needs
ml-commons' ``rerank`` search response processor (a search pipeline around a deployed cross-encoder): refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from es_biomed.errors import PlanError, require
from es_biomed.query.plan import Filters, ScoreMode, SearchPlan

__all__ = [
    "Dialect",
    "Rescore",
    "compile_search",
    "cosine_script",
    "text_query",
    "SOURCE_EXCLUDES",
    "PASSAGES_PATH",
    "knn_candidates",
    "KNN_OVERSAMPLE",
    "CE_TEXT_FIELD",
    "EndpointRequest",
    "rerank_inference_id",
    "rerank_endpoint_request",
]

Dialect = Literal["elasticsearch", "opensearch"]
PASSAGES_PATH = "passages"
#: Vectors are never returned in hits.
SOURCE_EXCLUDES = ("embedding", "passages.embedding")
HIGHLIGHT_FIELDS = ("title", "abstract", "body")
#: The document field the ``rerank_ce`` cross-encoder reads in Elasticsearch: ``title + ". " + abstract``.
CE_TEXT_FIELD = "ce_text"


@dataclass(frozen=True)
class Rescore:
    """One ``rescore`` entry: ``{"window_size": ..., "query": {"rescore_query": ..., ...}}``."""

    window_size: int
    rescore_query: Any  # an elasticsearch.dsl Query or a plain dict
    query_weight: float = 1.0
    rescore_query_weight: float = 1.0
    score_mode: ScoreMode = "total"

    def to_dict(self) -> dict[str, Any]:
        rq = self.rescore_query.to_dict() if hasattr(self.rescore_query, "to_dict") else self.rescore_query
        return {
            "window_size": self.window_size,
            "query": {
                "rescore_query": rq,
                "query_weight": self.query_weight,
                "rescore_query_weight": self.rescore_query_weight,
                "score_mode": self.score_mode,
            },
        }


def _dsl() -> Any:
    return require("elasticsearch.dsl", "es")


def cosine_script(
    field: str, query_vector: Any, dialect: Dialect = "elasticsearch", opensearch_script: str = "painless"
) -> dict[str, Any]:
    """The rescore script: ``cosine + 1.0``, 0 for a document without a vector."""
    if dialect == "elasticsearch":
        return {
            "source": f"doc['{field}'].size() == 0 ? 0 : cosineSimilarity(params.query_vector, '{field}') + 1.0",
            "params": {"query_vector": query_vector},
        }
    if opensearch_script == "knn_score":
        # k-NN plugin scoring script; for cosinesimil it returns 1 + cosine
        return {
            "lang": "knn",
            "source": "knn_score",
            "params": {"field": field, "query_value": query_vector, "space_type": "cosinesimil"},
        }
    return {
        "lang": "painless",
        "source": f"doc['{field}'].size() == 0 ? 0 : 1.0 + cosineSimilarity(params.query_value, doc['{field}'])",
        "params": {"query_value": query_vector},
    }


def _filter_clauses(filters: Filters) -> list[Any]:
    Q = _dsl().Q
    clauses = []
    if filters.sources:
        clauses.append(Q("terms", source=list(filters.sources)))
    if filters.year_from is not None or filters.year_to is not None:
        rng = {}
        if filters.year_from is not None:
            rng["gte"] = filters.year_from
        if filters.year_to is not None:
            rng["lte"] = filters.year_to
        clauses.append(Q("range", year=rng))
    return clauses


def text_query(plan: SearchPlan) -> Any:
    """The BM25 first pass: ``multi_match`` (plus filters in ``bool.filter``) as an ``elasticsearch.dsl`` Query."""
    Q = _dsl().Q
    fields = [name if boost == 1.0 else f"{name}^{boost:g}" for name, boost in plan.fields]
    mm = Q("multi_match", query=plan.query, fields=fields, type=plan.match_type)
    filters = _filter_clauses(plan.filters)
    return Q("bool", must=[mm], filter=filters) if filters else mm


def _vector_field(plan: SearchPlan, passages: bool) -> str:
    return f"{PASSAGES_PATH}.{plan.vector_field}" if passages else plan.vector_field


def _rescore_query(
    plan: SearchPlan, query_vector: Any, passages: bool, dialect: Dialect, opensearch_script: str
) -> Any:
    Q = _dsl().Q
    field = _vector_field(plan, passages)
    script = cosine_script(field, query_vector, dialect, opensearch_script)
    scored = Q("script_score", query=Q("exists", field=field), script=script)
    return Q("nested", path=PASSAGES_PATH, score_mode="max", query=scored) if passages else scored


def _rescore(plan: SearchPlan, query_vector: Any, passages: bool, dialect: Dialect, opensearch_script: str) -> Rescore:
    return Rescore(
        window_size=plan.window_size,
        rescore_query=_rescore_query(plan, query_vector, passages, dialect, opensearch_script),
        query_weight=plan.query_weight,
        rescore_query_weight=plan.rescore_query_weight,
        score_mode=plan.score_mode,
    )


def knn_candidates(k: int) -> int:
    """HNSW candidates per shard for a top-``k`` kNN: 10x ``k``, at least 100, at most 10,000 (the engines' cap)."""
    return min(max(10 * k, 100), 10_000)


#: Elasticsearch re-ranks ``oversample * k`` quantized candidates with the float vectors.
KNN_OVERSAMPLE = 3.0


def _knn(plan: SearchPlan, query_vector: Any, passages: bool, k: int) -> dict[str, Any]:
    knn: dict[str, Any] = {
        "field": _vector_field(plan, passages),
        "query_vector": query_vector,
        "k": k,
        "num_candidates": knn_candidates(k),
        "rescore_vector": {"oversample": KNN_OVERSAMPLE},
    }
    filters = _filter_clauses(plan.filters)
    if filters:
        knn["filter"] = [f.to_dict() for f in filters]
    return knn


def _opensearch_knn(plan: SearchPlan, query_vector: Any, passages: bool) -> Any:
    Q = _dsl().Q
    knn: dict[str, Any] = {"vector": query_vector, "k": knn_candidates(plan.k)}
    filters = _filter_clauses(plan.filters)
    if not passages:
        if filters:
            knn["filter"] = Q("bool", filter=filters).to_dict()
        return Q({"knn": {plan.vector_field: knn}})
    # a filter inside a nested knn would see the passage, not the document: filter the parents outside
    q = Q("nested", path=PASSAGES_PATH, score_mode="max", query=Q({"knn": {_vector_field(plan, True): knn}}))
    return Q("bool", must=[q], filter=filters) if filters else q


class EndpointRequest(NamedTuple):
    """One REST call: ``method``, ``path`` (from the root, no leading slash) and JSON ``body``."""

    method: str
    path: str
    body: dict[str, Any]


_INFERENCE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_\-]{0,62}[a-z0-9])?$")


def rerank_inference_id(cross_encoder: str) -> str:
    """The Elasticsearch ``rerank`` inference endpoint id for a cross-encoder name or directory: the last path
    component, lowercased, every run of other characters than ``a-z0-9_-`` made ``-`` (ids allow only those).

    Example:
        >>> rerank_inference_id("biomed-ce"), rerank_inference_id("/models/BioMed CE.v2/")
        ('biomed-ce', 'biomed-ce-v2')

    Raises:
        PlanError: nothing usable is left, or it is longer than 64 characters (names ``cross_encoder``).
    """
    base = cross_encoder.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    iid = re.sub(r"[^a-z0-9_-]+", "-", base.lower()).strip("-_")
    if not _INFERENCE_ID.match(iid):
        raise PlanError(
            f"cross_encoder {cross_encoder!r} gives no valid inference endpoint id ({iid!r}: 1 to 64 of a-z, 0-9, "
            "'-', '_', starting and ending with a letter or digit); pass inference_id"
        )
    return iid


def rerank_endpoint_request(
    inference_id: str, model_id: str, num_allocations: int = 1, num_threads: int = 1
) -> EndpointRequest:
    """``PUT _inference/rerank/<inference_id>``: a ``rerank`` endpoint on the ``elasticsearch`` service (the cluster's
    own ML nodes) serving the trained model ``model_id`` (a cross-encoder uploaded with eland as a
    ``text_similarity`` model).

    Example:
        >>> rerank_endpoint_request("biomed-ce", "biomed-ce").body["service_settings"]
        {'model_id': 'biomed-ce', 'num_allocations': 1, 'num_threads': 1}

    Raises:
        PlanError: an invalid inference id, an empty model id, a count below 1, or ``num_threads`` not a power of 2
            up to 32 (the message names it).
    """
    if not _INFERENCE_ID.match(inference_id):
        raise PlanError(f"inference_id {inference_id!r} is not a valid id (a-z, 0-9, '-', '_'; at most 64)")
    if not model_id:
        raise PlanError("model_id must name the eland-uploaded trained model")
    for name, val in (("num_allocations", num_allocations), ("num_threads", num_threads)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise PlanError(f"{name} must be a positive integer, got {val!r}")
    if num_threads > 32 or num_threads & (num_threads - 1):
        raise PlanError(f"num_threads must be a power of 2 up to 32 (Elasticsearch's rule), got {num_threads}")
    body = {
        "service": "elasticsearch",
        "service_settings": {"model_id": model_id, "num_allocations": num_allocations, "num_threads": num_threads},
    }
    return EndpointRequest("PUT", f"_inference/rerank/{inference_id}", body)


def _cross_encoder_retriever(
    plan: SearchPlan,
    query_vector: Any,
    passages: bool,
    inference_id: str | None,
    ce_field: str,
) -> dict[str, Any]:
    """``rerank_ce``: ``text_similarity_reranker`` over the ``rescorer`` retriever; ``linear`` when ``ce_weight < 1``."""
    if inference_id is None:
        if plan.cross_encoder is None:
            raise PlanError(
                "cross_encoder: mode rerank_ce needs a cross-encoder model; set cross_encoder (its inference "
                "endpoint id is derived from it) or pass inference_id"
            )
        inference_id = rerank_inference_id(plan.cross_encoder)
    if plan.k > plan.ce_window:
        raise PlanError(
            f"k {plan.k} exceeds ce_window {plan.ce_window}: Elasticsearch's text_similarity_reranker returns at most "
            "rank_window_size (ce_window) hits; raise ce_window to at least k"
        )
    rescored = {
        "rescorer": {
            "retriever": {"standard": {"query": text_query(plan).to_dict()}},
            "rescore": [_rescore(plan, query_vector, passages, "elasticsearch", "painless").to_dict()],
        }
    }
    reranked = {
        "text_similarity_reranker": {
            "retriever": rescored,
            "field": ce_field,
            "inference_id": inference_id,
            "inference_text": plan.query,
            "rank_window_size": plan.ce_window,
        }
    }
    if plan.ce_weight == 1.0:
        return reranked
    w = float(plan.ce_weight)
    return {
        "linear": {
            "retrievers": [
                {"retriever": reranked, "weight": w, "normalizer": "minmax"},
                {"retriever": rescored, "weight": 1.0 - w, "normalizer": "minmax"},
            ],
            "rank_window_size": plan.ce_window,
        }
    }


def compile_search(
    plan: SearchPlan,
    query_vector: Sequence[float] | Any = None,
    *,
    dialect: Dialect = "elasticsearch",
    passages: bool = False,
    highlight: bool = True,
    opensearch_script: Literal["painless", "knn_score"] = "painless",
    inference_id: str | None = None,
    ce_field: str = CE_TEXT_FIELD,
) -> dict[str, Any]:
    """The ``_search`` request body for ``plan``.

    Args:
        plan: The search.
        query_vector: The query embedding (list of floats); required except in ``bm25`` mode.
        dialect: ``elasticsearch`` or ``opensearch``.
        passages: Score vectors over the nested ``passages`` (best passage) instead of the document vector.
        highlight: Add highlighting on title, abstract and body.
        opensearch_script: OpenSearch rescore script: Painless ``cosineSimilarity`` or ``knn_score``.
        inference_id: ``rerank_ce``: the ``rerank`` inference endpoint (default:
            :func:`rerank_inference_id` of ``plan.cross_encoder``).
        ce_field: ``rerank_ce``: the document field the cross-encoder reads (``title + ". " + abstract``).

    Returns:
        A JSON-serializable dict, valid against the Elasticsearch API specification (ES dialect).

    Raises:
        PlanError: a vector is missing, the mode has no equivalent in the dialect, or a ``rerank_ce`` plan names
            no cross-encoder or asks for more hits (``k``) than its ``ce_window``.
    """
    if plan.mode != "bm25" and query_vector is None:
        raise PlanError(f"mode {plan.mode!r} needs a query vector")
    if query_vector is not None and not isinstance(query_vector, str):  # a str is a template placeholder
        query_vector = [float(x) for x in query_vector]
    if dialect not in ("elasticsearch", "opensearch"):
        raise PlanError(f"dialect must be elasticsearch or opensearch, got {dialect!r}")
    if dialect == "opensearch" and plan.mode in ("hybrid", "hybrid_rerank"):
        raise PlanError(
            "hybrid search in OpenSearch needs the neural-search plugin's search pipeline; the cluster backend "
            "fuses BM25 and kNN client-side instead"
        )
    if dialect == "opensearch" and plan.mode == "rerank_ce":
        raise PlanError(
            "rerank_ce in OpenSearch needs ml-commons' rerank search response processor (a search pipeline around a "
            "deployed cross-encoder), which es-biomed does not set up; use the embedded engine or Elasticsearch"
        )
    dsl = _dsl()
    s = dsl.Search()
    extra: dict[str, Any] = {"size": plan.k, "_source": {"excludes": list(SOURCE_EXCLUDES)}}
    if plan.mode in ("bm25", "rerank"):
        s = s.query(text_query(plan))
        if plan.mode == "rerank":
            extra["rescore"] = _rescore(plan, query_vector, passages, dialect, opensearch_script).to_dict()
    elif plan.mode == "rerank_ce":
        extra["retriever"] = _cross_encoder_retriever(plan, query_vector, passages, inference_id, ce_field)
    elif plan.mode == "dense":
        if dialect == "elasticsearch":
            extra["knn"] = _knn(plan, query_vector, passages, plan.k)
        else:
            s = s.query(_opensearch_knn(plan, query_vector, passages))
    else:
        rrf = {
            "rrf": {
                "retrievers": [
                    {"standard": {"query": text_query(plan).to_dict()}},
                    {"knn": _knn(plan, query_vector, passages, plan.window_size)},
                ],
                "rank_window_size": plan.window_size,
                "rank_constant": plan.rank_constant,
            }
        }
        if plan.mode == "hybrid_rerank":
            rrf = {
                "rescorer": {
                    "retriever": rrf,
                    "rescore": [_rescore(plan, query_vector, passages, dialect, opensearch_script).to_dict()],
                }
            }
        extra["retriever"] = rrf
    if highlight and plan.mode != "dense":
        # the array form keeps field order and is what the API specification models (a multi-key map is not)
        extra["highlight"] = {
            "fields": [{f: {}} for f in HIGHLIGHT_FIELDS],
            "fragment_size": 150,
            "number_of_fragments": 1,
        }
    return s.extra(**extra).to_dict()
