"""``rerank_ce`` compiled for Elasticsearch: literal bodies, validation of every generated body (the
``text_similarity_reranker`` and ``linear`` retrievers around the ``rescorer`` retriever, and the inference endpoint's
``PUT``) against the official API specification, and the refusals."""

from __future__ import annotations

import copy
import itertools
import re
from functools import cache

import pytest

pytest.importorskip("elasticsearch")
pytest.importorskip("openapi_schema_validator")

from es_biomed.errors import PlanError  # noqa: E402
from es_biomed.query import Filters, SearchPlan  # noqa: E402
from es_biomed.query.es_compile import (  # noqa: E402
    CE_TEXT_FIELD,
    compile_search,
    rerank_endpoint_request,
    rerank_inference_id,
)
from es_biomed.query.presets import default_plan  # noqa: E402
from tests import es_spec  # noqa: E402

VEC = [0.25, -0.5, 0.125]
FILTERS = (Filters(), Filters(sources=("pubmed", "pmc"), year_from=2010, year_to=2020))
INFERENCE_PUT = "#/components/requestBodies/inference.put/content/application~1json/schema"
ES_SERVICE_PUT = "/_inference/{task_type}/{elasticsearch_inference_id}"

PLAN = SearchPlan(
    "brca1 breast cancer",
    fields={"title": 2.0, "abstract": 1.0},
    match_type="best_fields",
    k=5,
    window_size=40,
    rescore_query_weight=1.3,
    mode="rerank_ce",
    ce_window=10,
    cross_encoder="biomed-ce",
)
RESCORED = {
    "rescorer": {
        "retriever": {
            "standard": {
                "query": {
                    "multi_match": {
                        "query": "brca1 breast cancer",
                        "fields": ["title^2", "abstract"],
                        "type": "best_fields",
                    }
                }
            }
        },
        "rescore": [
            {
                "window_size": 40,
                "query": {
                    "rescore_query": {
                        "script_score": {
                            "query": {"exists": {"field": "embedding"}},
                            "script": {
                                "source": "doc['embedding'].size() == 0 ? 0 : "
                                "cosineSimilarity(params.query_vector, 'embedding') + 1.0",
                                "params": {"query_vector": VEC},
                            },
                        }
                    },
                    "query_weight": 1.0,
                    "rescore_query_weight": 1.3,
                    "score_mode": "total",
                },
            }
        ],
    }
}
RERANKED = {
    "text_similarity_reranker": {
        "retriever": RESCORED,
        "field": "ce_text",
        "inference_id": "biomed-ce",
        "inference_text": "brca1 breast cancer",
        "rank_window_size": 10,
    }
}


def test_rerank_ce_body_literal():
    body = compile_search(PLAN, VEC, highlight=False)
    assert body == {"size": 5, "_source": {"excludes": ["embedding", "passages.embedding"]}, "retriever": RERANKED}
    assert es_spec.errors(body) == []


def test_interpolated_rerank_ce_is_a_linear_retriever_of_both_minmax_normalized():
    body = compile_search(PLAN.replace(ce_weight=0.25), VEC, highlight=False)
    assert body["retriever"] == {
        "linear": {
            "retrievers": [
                {"retriever": RERANKED, "weight": 0.25, "normalizer": "minmax"},
                {"retriever": RESCORED, "weight": 0.75, "normalizer": "minmax"},
            ],
            "rank_window_size": 10,
        }
    }
    assert es_spec.errors(body) == []


@pytest.mark.parametrize(
    ("passages", "filters", "weight", "score_mode"),
    list(itertools.product((False, True), FILTERS, (1.0, 0.4, 0.0), ("total", "multiply"))),
)
def test_every_rerank_ce_variant_validates_against_the_spec(passages, filters, weight, score_mode):
    plan = default_plan(
        "aspirin and fever",
        mode="rerank_ce",
        filters=filters,
        ce_weight=weight,
        score_mode=score_mode,
        cross_encoder="biomed-ce",
    )
    body = compile_search(plan, [0.1] * 384, passages=passages)
    assert es_spec.errors(body) == []
    assert "highlight" in body and "query" not in body and "rescore" not in body


@pytest.mark.parametrize(
    ("weight", "mutate", "message"),
    [
        (
            1.0,
            lambda r: r["text_similarity_reranker"].__setitem__("inference_txt", "x"),
            "'inference_txt' was unexpected",
        ),
        (1.0, lambda r: r["text_similarity_reranker"].pop("field"), "'field' is a required property"),
        (1.0, lambda r: r["text_similarity_reranker"].__setitem__("rank_window_size", "10"), "'10' is not of type"),
        (
            1.0,
            lambda r: r["text_similarity_reranker"]["retriever"]["rescorer"].__setitem__("rescroe", {}),
            "'rescroe' was unexpected",
        ),
        (
            0.5,
            lambda r: r["linear"]["retrievers"][0].__setitem__("normaliser", "minmax"),
            "'normaliser' was unexpected",
        ),
        (0.5, lambda r: r["linear"]["retrievers"][1].__setitem__("normalizer", "zscore"), "'zscore' is not one of"),
    ],
)
def test_validator_rejects_typos_in_the_new_retrievers(weight, mutate, message):
    body = compile_search(PLAN.replace(ce_weight=weight), VEC)
    assert es_spec.errors(body) == []
    mutate(body["retriever"])
    errs = es_spec.errors(body)
    assert errs and any(message in e for e in errs), errs


def test_inference_id_and_field_overrides():
    body = compile_search(PLAN, VEC, inference_id="my-rerank", ce_field="abstract")
    tsr = body["retriever"]["text_similarity_reranker"]
    assert (tsr["inference_id"], tsr["field"], CE_TEXT_FIELD) == ("my-rerank", "abstract", "ce_text")
    assert es_spec.errors(body) == []


@pytest.mark.parametrize(
    ("plan", "kwargs", "message"),
    [
        (PLAN.replace(cross_encoder=None), {}, "cross_encoder: mode rerank_ce needs a cross-encoder model"),
        (
            PLAN.replace(k=11),
            {},
            "k 11 exceeds ce_window 10: Elasticsearch's text_similarity_reranker returns at most",
        ),
        (
            PLAN,
            {"dialect": "opensearch"},
            "rerank_ce in OpenSearch needs ml-commons' rerank search response processor",
        ),
        (PLAN.replace(cross_encoder="/models/..."), {}, "gives no valid inference endpoint id"),
    ],
)
def test_refusals_name_the_reason(plan, kwargs, message):
    with pytest.raises(PlanError, match=re.escape(message)):
        compile_search(plan, VEC, **kwargs)


def test_inference_ids_from_names_and_paths():
    assert rerank_inference_id("biomed-ce") == "biomed-ce"
    assert rerank_inference_id("/models/BioMed CE.v2/") == "biomed-ce-v2"
    assert rerank_inference_id("cross-encoder/ms-marco-MiniLM-L-6-v2") == "ms-marco-minilm-l-6-v2"
    with pytest.raises(PlanError, match="gives no valid inference endpoint id"):
        rerank_inference_id("x" * 65)


# ------------------------------------------------------------------------------------------------ the endpoint
@cache
def _es_service_put_validator():
    """The ``PUT _inference/{task_type}/{elasticsearch_inference_id}`` body schema (inline in the path, so not in
    :mod:`tests.es_spec`'s request bodies), closed like the rest, over the patched components."""
    from openapi_schema_validator import OAS30Validator

    op = es_spec._load_spec()["paths"][ES_SERVICE_PUT]["put"]
    schema = copy.deepcopy(op["requestBody"]["content"]["application/json"]["schema"])
    schema["additionalProperties"] = False
    task_types = es_spec.components()["schemas"]["inference._types.ElasticsearchTaskType"]["enum"]
    return OAS30Validator({"components": es_spec.components(), **schema}), task_types


def _endpoint_errors(body):
    validator, _ = _es_service_put_validator()
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


def test_rerank_endpoint_request_literal_and_spec():
    req = rerank_endpoint_request("biomed-ce", "biomed_ce_model", num_allocations=2, num_threads=4)
    assert req == (
        "PUT",
        "_inference/rerank/biomed-ce",
        {
            "service": "elasticsearch",
            "service_settings": {"model_id": "biomed_ce_model", "num_allocations": 2, "num_threads": 4},
        },
    )
    _, task_types = _es_service_put_validator()
    assert req.path.split("/")[1] in task_types  # the {task_type} path parameter
    assert _endpoint_errors(req.body) == []
    assert es_spec.errors(req.body, INFERENCE_PUT) == []  # the generic PUT _inference/{task_type}/{id} too


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b["service_settings"].__setitem__("num_thread", 1), "'num_thread' was unexpected"),
        (lambda b: b["service_settings"].pop("num_threads"), "'num_threads' is a required property"),
        (lambda b: b.__setitem__("service", "elasticsearchh"), "'elasticsearchh' is not one of"),
        (lambda b: b.__setitem__("servise_settings", {}), "'servise_settings' was unexpected"),
    ],
)
def test_endpoint_validator_rejects_typos(mutate, message):
    body = rerank_endpoint_request("biomed-ce", "m").body
    mutate(body)
    errs = _endpoint_errors(body)
    assert errs and any(message in e for e in errs), errs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"inference_id": "Biomed-CE"}, "inference_id 'Biomed-CE' is not a valid id"),
        ({"model_id": ""}, "model_id must name the eland-uploaded trained model"),
        ({"num_allocations": 0}, "num_allocations must be a positive integer, got 0"),
        ({"num_threads": 3}, "num_threads must be a power of 2 up to 32"),
        ({"num_threads": 64}, "num_threads must be a power of 2 up to 32"),
    ],
)
def test_endpoint_parameters_are_checked(kwargs, message):
    args = {"inference_id": "biomed-ce", "model_id": "m", **kwargs}
    with pytest.raises(PlanError, match=re.escape(message)):
        rerank_endpoint_request(**args)
