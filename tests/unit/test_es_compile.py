"""The Elasticsearch compiler: literal bodies, validation of every generated body against the official API
specification, negative tests for the validator, and the stored search template rendered with mustache."""

from __future__ import annotations

import itertools
import json
import re

import pytest

pytest.importorskip("elasticsearch")
pytest.importorskip("openapi_schema_validator")
chevron = pytest.importorskip("chevron")

from es_biomed.backends.elasticsearch import bulk_actions, document_source  # noqa: E402
from es_biomed.backends.es_mappings import (  # noqa: E402
    index_template,
    ingest_pipeline,
    search_template_source,
    template_priority,
)
from es_biomed.corpus import Document  # noqa: E402
from es_biomed.errors import PlanError  # noqa: E402
from es_biomed.query import Filters, SearchPlan  # noqa: E402
from es_biomed.query.es_compile import compile_search  # noqa: E402
from es_biomed.query.plan import SCORE_MODES, SEARCH_MODES  # noqa: E402
from es_biomed.query.presets import default_plan  # noqa: E402
from tests import es_spec  # noqa: E402

VEC = [0.25, -0.5, 0.125]
FILTERS = (Filters(), Filters(sources=("pubmed", "pmc"), year_from=2010, year_to=2020), Filters(year_to=1999))


def test_rerank_body_literal():
    plan = SearchPlan(
        "brca1 breast cancer",
        fields={"title": 2.0, "abstract": 1.0},
        match_type="best_fields",
        filters=Filters(sources=("pubmed",), year_from=2015),
        k=5,
        window_size=40,
        query_weight=0.7,
        rescore_query_weight=1.3,
        score_mode="multiply",
    )
    assert compile_search(plan, VEC) == {
        "query": {
            "bool": {
                "must": [
                    {
                        "multi_match": {
                            "query": "brca1 breast cancer",
                            "fields": ["title^2", "abstract"],
                            "type": "best_fields",
                        }
                    }
                ],
                "filter": [{"terms": {"source": ["pubmed"]}}, {"range": {"year": {"gte": 2015}}}],
            }
        },
        "size": 5,
        "_source": {"excludes": ["embedding", "passages.embedding"]},
        "rescore": {
            "window_size": 40,
            "query": {
                "rescore_query": {
                    "script_score": {
                        "query": {"exists": {"field": "embedding"}},
                        "script": {
                            "source": "doc['embedding'].size() == 0 ? 0 : cosineSimilarity(params.query_vector, 'embedding') + 1.0",
                            "params": {"query_vector": VEC},
                        },
                    }
                },
                "query_weight": 0.7,
                "rescore_query_weight": 1.3,
                "score_mode": "multiply",
            },
        },
        "highlight": {
            "fields": [{"title": {}}, {"abstract": {}}, {"body": {}}],
            "fragment_size": 150,
            "number_of_fragments": 1,
        },
    }


def test_best_passage_rescore_is_a_nested_max():
    body = compile_search(SearchPlan("q"), VEC, passages=True)
    rq = body["rescore"]["query"]["rescore_query"]
    assert rq["nested"]["path"] == "passages" and rq["nested"]["score_mode"] == "max"
    script = rq["nested"]["query"]["script_score"]["script"]["source"]
    assert "cosineSimilarity(params.query_vector, 'passages.embedding') + 1.0" in script


def test_hybrid_uses_rrf_and_rescorer_retrievers():
    plan = SearchPlan("q", mode="hybrid", k=7, window_size=30)
    rrf = compile_search(plan, VEC)["retriever"]["rrf"]
    assert rrf["rank_window_size"] == 30 and rrf["rank_constant"] == 60
    assert [next(iter(r)) for r in rrf["retrievers"]] == ["standard", "knn"]
    body = compile_search(plan.replace(mode="hybrid_rerank"), VEC)
    assert "rescore" not in body  # the rrf retriever rejects a top-level rescore
    rescorer = body["retriever"]["rescorer"]
    assert "rrf" in rescorer["retriever"] and rescorer["rescore"][0]["window_size"] == 30


def test_dense_is_top_level_knn_with_filters():
    body = compile_search(SearchPlan("q", mode="dense", k=4, filters=Filters(sources=("pmc",))), VEC)
    assert body["knn"] == {
        "field": "embedding",
        "query_vector": VEC,
        "k": 4,
        "num_candidates": 100,
        "rescore_vector": {"oversample": 3.0},
        "filter": [{"terms": {"source": ["pmc"]}}],
    }
    assert "query" not in body and "highlight" not in body


@pytest.mark.parametrize(
    ("mode", "passages", "filters", "score_mode"),
    list(itertools.product(SEARCH_MODES, (False, True), FILTERS, SCORE_MODES)),
)
def test_every_plan_variant_validates_against_the_spec(mode, passages, filters, score_mode):
    extra = {"cross_encoder": "biomed-ce"} if mode == "rerank_ce" else {}
    plan = default_plan("aspirin and fever", mode=mode, filters=filters, score_mode=score_mode, **extra)
    body = compile_search(plan, [0.1] * 384, passages=passages)
    assert es_spec.errors(body) == []


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda b: b["rescore"]["query"].__setitem__("rescore_query_wieght", 1.0),
            "'rescore_query_wieght' was unexpected",
        ),
        (lambda b: b.__setitem__("query", {"multi_matchh": {"query": "a"}}), "'multi_matchh' was unexpected"),
        (lambda b: b.__setitem__("rescroe", b.pop("rescore")), "'rescroe' was unexpected"),
        (lambda b: b["query"]["multi_match"].__setitem__("feilds", ["x"]), "'feilds' was unexpected"),
        (lambda b: b["rescore"].__setitem__("window_size", "50"), "rescore"),
        (lambda b: b["rescore"]["query"].__setitem__("score_mode", "sum"), "rescore"),
        (lambda b: b["rescore"]["query"]["rescore_query"]["script_score"].pop("script"), "rescore"),
    ],
)
def test_validator_rejects_typos_and_bad_values(mutate, message):
    body = compile_search(default_plan("a"), VEC)
    assert es_spec.errors(body) == []
    mutate(body)
    errs = es_spec.errors(body)
    assert errs and any(message in e for e in errs), errs


def render(params: dict, engine: str = "elasticsearch") -> dict:
    """Render as the engines do: ``{{var}}`` is JSON-escaped (search templates are JSON), ``toJson`` writes JSON."""
    data = dict(params, toJson=lambda text, _render: json.dumps(params.get(text.strip())))
    data = {k: json.dumps(v)[1:-1] if isinstance(v, str) else v for k, v in data.items()}
    source = re.sub(r"\{\{(\w+)\}\}", r"{{{\1}}}", search_template_source(engine))  # no HTML escaping
    return json.loads(chevron.render(source, data))


PARAMS = {
    "query": 'aspirin "low dose" \\ fever',
    "query_vector": [0.1, -0.2, 0.3],
    "k": 7,
    "window_size": 30,
    "query_weight": 0.5,
    "rescore_query_weight": 12.0,
    "score_mode": "max",
}


@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
def test_search_template_renders_to_the_builder_body(engine):
    """Issue 9: the stored template scores the best passage, as the backend and the embedded engine do."""
    expected = compile_search(
        default_plan(
            PARAMS["query"], k=7, window_size=30, query_weight=0.5, rescore_query_weight=12.0, score_mode="max"
        ),
        PARAMS["query_vector"],
        dialect=engine,
        passages=True,
    )
    assert render(PARAMS, engine) == expected


@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
def test_search_template_defaults_equal_the_preset(engine):
    vec = [0.5, 0.5]
    expected = compile_search(default_plan("aspirin"), vec, dialect=engine, passages=True)
    assert render({"query": "aspirin", "query_vector": vec}, engine) == expected


@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
def test_a_template_call_without_query_vector_is_refused_by_name(engine):
    """Issue 26: the engine's error names the missing parameter (an unknown top-level key it refuses), instead of
    "[script] failed to parse field [params]"."""
    body = render({"query": "aspirin"}, engine)
    assert body["query_vector_is_required"].startswith("set params.query_vector")
    assert any("'query_vector_is_required' was unexpected" in e for e in es_spec.errors(body))


def test_template_and_script_bodies_validate():
    assert (
        es_spec.errors({"script": {"lang": "mustache", "source": search_template_source()}}, es_spec.PUT_SCRIPT) == []
    )
    call = {"id": "es-biomed-rescore", "params": {"query": "aspirin", "query_vector": [0.1] * 384, "k": 10}}
    assert es_spec.errors(call, es_spec.SEARCH_TEMPLATE) == []
    assert es_spec.errors(render({"query": "aspirin", "query_vector": [0.1] * 384})) == []


def test_index_template_validates_and_carries_dims_and_encoder():
    body = index_template(
        768,
        {"name": "biomedbert", "dims": 768, "fingerprint": "abc"},
        {"type": "hnsw", "m": 32, "ef_construction": 200},
    )
    assert es_spec.errors(body, es_spec.PUT_INDEX_TEMPLATE) == []
    props = body["template"]["mappings"]["properties"]
    assert props["embedding"]["dims"] == 768 and props["passages"]["properties"]["embedding"]["dims"] == 768
    assert props["embedding"]["index_options"] == {"type": "hnsw", "m": 32, "ef_construction": 200}
    assert props["embedding"]["similarity"] == "cosine" and props["embedding"]["index"] is True
    assert props["title"]["analyzer"] == "english" and props["title"]["fields"]["std"]["analyzer"] == "standard"
    assert body["template"]["mappings"]["_meta"]["encoder"]["name"] == "biomedbert"
    bad = index_template(384)
    bad["template"]["mappings"]["properties"]["embedding"]["simlarity"] = "cosine"
    # mapping properties are open maps in the spec; a typo inside a field definition is caught one level up
    bad["template"]["settingz"] = {}
    assert any("'settingz' was unexpected" in e for e in es_spec.errors(bad, es_spec.PUT_INDEX_TEMPLATE))


def test_ingest_pipeline_validates():
    body = ingest_pipeline("my-model")
    assert es_spec.errors(body, es_spec.PIPELINE) == []
    (inference,) = [p["inference"] for p in body["processors"] if "inference" in p]
    assert inference["model_id"] == "my-model"


def test_bulk_action_lines_validate_and_ids_are_deterministic():
    import numpy as np
    from elasticsearch.helpers import expand_action

    doc = Document(
        id="pmid:42", title="T", abstract="A", body="b " * 3, source="pubmed", date="2020-01-02", authors=("X",)
    )
    vecs = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    (action,) = bulk_actions([doc], [vecs], [["T A", "T b b b"]], "es-biomed")
    line, source = expand_action(action)
    assert line == {"index": {"_index": "es-biomed", "_id": "pmid:42"}}
    assert es_spec.errors(line, es_spec.BULK_ACTION) == []
    assert source == document_source(doc, vecs, ["T A", "T b b b"])
    assert source["embedding"] == [1.0, 0.0] and source["year"] == 2020
    assert source["passages"] == [
        {"text": "T A", "embedding": [1.0, 0.0]},
        {"text": "T b b b", "embedding": [0.0, 1.0]},
    ]
    assert es_spec.errors({"indexx": {"_index": "x"}}, es_spec.BULK_ACTION)


def test_ce_text_in_the_source_template_pipeline_and_reindex():
    """rerank_ce's cross-encoder reads ce_text: title ". " abstract, the embedded stage's text (document_text)."""
    from es_biomed.backends.cluster import reindex_body
    from es_biomed.backends.cluster.bulk import CE_TEXT_SCRIPT

    doc = Document(id="d", title="Aspirin", abstract="It thins blood.", body="long text")
    assert document_source(doc, None, ce_text=True)["ce_text"] == "Aspirin. It thins blood."
    assert "ce_text" not in document_source(doc, None)  # OpenSearch, and indices made before the field
    assert document_source(Document(id="t", title="Only a title"), None, ce_text=True)["ce_text"] == "Only a title"
    assert "ce_text" not in document_source(Document(id="b", body="body only"), None, ce_text=True)
    (action,) = bulk_actions([doc], [None], [[]], "es-biomed", ce_text=True)
    assert action["_source"]["ce_text"] == "Aspirin. It thins blood."

    es_props = index_template(384)["template"]["mappings"]["properties"]
    assert es_props["ce_text"] == {"type": "text", "index": False}  # stored in _source, never searched
    assert "ce_text" not in index_template(384, engine="opensearch")["template"]["mappings"]["properties"]
    pipeline = ingest_pipeline("m")
    (ce,) = [p["script"] for p in pipeline["processors"] if p.get("script", {}).get("tag") == "ce_text"]
    assert "ctx.ce_text = t.isEmpty() ? a : (a.isEmpty() ? t : t + '. ' + a)" in ce["source"]
    assert es_spec.errors(pipeline, es_spec.PIPELINE) == []
    without = ingest_pipeline("m", ce_text=False)
    assert len(without["processors"]) == len(pipeline["processors"]) - 1
    assert "ce_text" not in json.dumps(without["processors"]) and es_spec.errors(without, es_spec.PIPELINE) == []

    body = reindex_body("es-biomed", "es-biomed-v2", "elasticsearch")
    assert es_spec.errors(body, es_spec.REINDEX) == []
    assert body["script"] == {"lang": "painless", "source": CE_TEXT_SCRIPT}
    assert "ctx._source.ce_text == null" in CE_TEXT_SCRIPT  # a version that has it keeps it
    assert reindex_body("es-biomed", "es-biomed-v2", "opensearch") == {
        "source": {"index": "es-biomed"},
        "dest": {"index": "es-biomed-v2"},
    }
    assert "script" not in reindex_body("a", "a-v2", "elasticsearch", scripts=False)  # no lang-painless
    assert es_spec.errors({**body, "scriptt": {}}, es_spec.REINDEX)


def test_opensearch_dialect():
    body = compile_search(SearchPlan("q", window_size=20), VEC, dialect="opensearch")
    script = body["rescore"]["query"]["rescore_query"]["script_score"]["script"]
    assert script == {
        "lang": "painless",
        "source": "doc['embedding'].size() == 0 ? 0 : 1.0 + cosineSimilarity(params.query_value, doc['embedding'])",
        "params": {"query_value": VEC},
    }
    knn_script = compile_search(SearchPlan("q"), VEC, dialect="opensearch", opensearch_script="knn_score")
    assert knn_script["rescore"]["query"]["rescore_query"]["script_score"]["script"]["source"] == "knn_score"
    dense = compile_search(SearchPlan("q", mode="dense", k=3), VEC, dialect="opensearch")
    assert dense["query"] == {"knn": {"embedding": {"vector": VEC, "k": 100}}} and dense["size"] == 3
    nested = compile_search(SearchPlan("q", mode="dense", k=20), VEC, dialect="opensearch", passages=True)
    assert nested["query"] == {
        "nested": {
            "path": "passages",
            "score_mode": "max",
            "query": {"knn": {"passages.embedding": {"vector": VEC, "k": 200}}},
        }
    }
    best = compile_search(SearchPlan("q"), VEC, dialect="opensearch", passages=True)
    rq = best["rescore"]["query"]["rescore_query"]["nested"]
    assert rq["score_mode"] == "max" and "doc['passages.embedding']" in rq["query"]["script_score"]["script"]["source"]
    template = index_template(384, engine="opensearch")
    props = template["template"]["mappings"]["properties"]
    assert template["template"]["settings"]["index"]["knn"] is True
    for vec_field in (props["embedding"], props["passages"]["properties"]["embedding"]):
        assert vec_field["type"] == "knn_vector" and vec_field["dimension"] == 384
        assert vec_field["method"]["engine"] == "lucene"
    assert template["template"]["mappings"]["dynamic"] == "strict" and props["passages"]["type"] == "nested"
    with pytest.raises(PlanError, match=re.escape("hybrid search in OpenSearch needs the neural-search plugin")):
        compile_search(SearchPlan("q", mode="hybrid"), VEC, dialect="opensearch")


def test_template_priorities_never_tie_on_overlapping_patterns():
    """Issue 9: ``es-biomed-*`` at priority 200 for every alias overlapped ``es-biomed-test-*`` (refused)."""
    aliases = ["es-biomed", "es-biomed-test-1", "es-biomed-test-2", "es-biomed-v", "x"]
    for a, b in itertools.combinations(aliases, 2):
        pa, pb = f"{a}-v", f"{b}-v"
        overlap = pa.startswith(pb) or pb.startswith(pa)
        assert not overlap or template_priority(a) != template_priority(b), (a, b)
    assert index_template(3, alias="es-biomed-test-1")["index_patterns"] == ["es-biomed-test-1-v*"]


def test_vector_required_outside_bm25():
    with pytest.raises(PlanError, match="mode 'rerank' needs a query vector"):
        compile_search(SearchPlan("q"))
    assert "rescore" not in compile_search(SearchPlan("q", mode="bm25"))


def test_cli_print_request_needs_no_cluster(monkeypatch):
    from click.testing import CliRunner

    from es_biomed.cli import main

    monkeypatch.delenv("ES_URL", raising=False)
    args = [
        "search",
        "BRCA1 breast cancer",
        "--backend",
        "es",
        "--print-request",
        "--no-rerank",
        "-k",
        "5",
        "--source",
        "pubmed",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert body == compile_search(
        default_plan("BRCA1 breast cancer", mode="bm25", k=5, filters=Filters(sources=("pubmed",)))
    )
    assert es_spec.errors(body) == []
    res = CliRunner().invoke(main, ["search", "x", "--backend", "es", "--no-rerank"])
    assert res.exit_code == 1 and "no Elasticsearch URL: set ES_URL" in res.output
    res = CliRunner().invoke(main, ["search", "x", "--no-rerank", "--hybrid", "--print-request"])
    assert res.exit_code == 2 and "conflicting modes: bm25, hybrid" in res.output


@pytest.mark.parametrize("passages", [False, True])
def test_table9_plans_compile_to_valid_rescores(passages):
    """The paper's method is a rescore with query_weight 0: the body says so and validates against the spec."""
    from es_biomed.eval.table9 import table9_plans

    plans = table9_plans(default_plan("aspirin and fever"), [20, 50], depth=60)
    for name, plan in plans.items():
        body = compile_search(plan, [0.1] * 384, passages=passages)
        assert es_spec.errors(body) == [], name
    cos = compile_search(plans["bm25+cosine@20"], VEC)
    assert cos["size"] == 20
    rescore = cos["rescore"] if isinstance(cos["rescore"], dict) else cos["rescore"][0]
    assert rescore["window_size"] == 20
    assert (rescore["query"]["query_weight"], rescore["query"]["rescore_query_weight"]) == (0.0, 1.0)
    assert "rescore" not in compile_search(plans["bm25"], VEC)


def test_cli_print_request_follows_the_backend_dialect(monkeypatch):
    """``--backend opensearch --print-request`` prints OpenSearch's body (the vector in ``params.query_value``)
    unless ``--dialect`` says otherwise (issue 26)."""
    from click.testing import CliRunner

    from es_biomed.cli import main

    monkeypatch.delenv("OPENSEARCH_URL", raising=False)
    args = ["search", "aspirin and fever", "--print-request", "-k", "3"]
    got = {}
    for extra in (["--backend", "opensearch"], ["--backend", "opensearch", "--dialect", "elasticsearch"], []):
        res = CliRunner().invoke(main, args + extra)
        assert res.exit_code == 0, res.output
        body = json.loads(res.output)
        got[" ".join(extra)] = [p for p in ("query_value", "query_vector") if f'"{p}"' in json.dumps(body)]
    assert got == {
        "--backend opensearch": ["query_value"],
        "--backend opensearch --dialect elasticsearch": ["query_vector"],
        "": ["query_vector"],
    }
