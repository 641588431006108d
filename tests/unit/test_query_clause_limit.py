"""One limit on the size of a BM25 query, the same on every engine: a 10,000-character query that `serve` accepted
was answered by the embedded engine and refused by OpenSearch ("maxClauseCount is set to 1024"). The plan now counts
its term clauses (the project's tokenizer, stop words included, times the fields) and refuses more than
MAX_QUERY_CLAUSES with a PlanError naming ``query``, before any engine sees it."""

from __future__ import annotations

import pickle
import re
import warnings

import pytest
from click.testing import CliRunner

from es_biomed.backends import EmbeddedIndex
from es_biomed.corpus import Document
from es_biomed.errors import PlanError
from es_biomed.query import SearchPlan
from es_biomed.query.analysis import count_query_terms
from es_biomed.query.plan import LUCENE_MAX_CLAUSES, MAX_QUERY_CLAUSES, query_clauses
from es_biomed.query.presets import default_plan

DOCS = [
    Document(id="d1", title="Aspirin", abstract="aspirin aspirin lowers fever", source="pubmed", date="2010-01-01"),
    Document(id="d2", abstract="aspirin and heart attacks in older adults", source="pmc", date="2015"),
    Document(id="d3", abstract="aspirin after stroke", source="pubmed", date="2020"),
]
#: The probe's query: 10,000 characters, 1,250 words (serve's MAX_QUERY_CHARS let it through).
PROBE_QUERY = "aspirin " * 1250
#: With the three default fields: 333 words are 999 clauses, 334 are 1,002.
AT_LIMIT = " ".join(["aspirin"] * (MAX_QUERY_CLAUSES // 3))
OVER_LIMIT = AT_LIMIT + " stroke"
TOO_LONG = "query is too long: its 334 words (stop words included) over 3 field(s) make 1002 term clauses"


def test_the_limit_leaves_room_for_the_filters_under_lucenes():
    assert MAX_QUERY_CLAUSES == 1000 and LUCENE_MAX_CLAUSES - MAX_QUERY_CLAUSES >= 17 + 2  # a terms and a range filter


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("", 0),
        ("aspirin and stroke", 3),  # the stop word counts: an upper bound of what the english analyzer keeps
        ("The patient's p53 levels", 5),  # the, patient, 's, p53, levels
        ("p53's", 2),  # Lucene's tokenizer gives p53 + s too (no possessive after a digit)
        ("COVID-19 and α-synuclein: 1,000 cases", 7),  # covid 19 and α synuclein 1,000 cases
        ("中文", 2),  # one token per Han character, as in UAX#29
        ("x" * 255, 1),
        ("x" * 600, 3),  # Lucene's standard tokenizer cuts a token every 255 characters
        ("aspirin " * 5, 5),  # duplicates count: a match query holds one clause per position
    ],
)
def test_count_query_terms(text, terms):
    assert count_query_terms(text) == terms


@pytest.mark.parametrize(
    "text",
    [
        "The patient's p53 levels rose 3.5-fold in U.S.A. trials",
        "COVID-19 and α-synuclein: 1,000 cases",
        "don't stop the p53's role in BRCA1",
        PROBE_QUERY,
    ],
)
def test_the_count_bounds_the_embedded_analyzers_terms(tmp_path, toy_encoder, text):
    idx = EmbeddedIndex.create(tmp_path / "ix", toy_encoder.info)
    assert count_query_terms(text) >= len(idx.analyze(text))


def test_the_plan_refuses_more_clauses_than_the_limit_naming_the_query():
    assert query_clauses(AT_LIMIT, 3) == 999
    SearchPlan(AT_LIMIT)  # three fields: 999 clauses
    with pytest.raises(PlanError, match=re.escape(TOO_LONG)) as err:
        SearchPlan(OVER_LIMIT)
    assert err.value.param == "query"
    assert "use at most 333 words, or fewer fields" in str(err.value)
    # one field takes up to 1,000 words; every mode that runs BM25 is refused, dense alone analyzes nothing
    one = {"fields": {"abstract": 1.0}}
    SearchPlan(" ".join(["aspirin"] * 1000), **one)
    with pytest.raises(PlanError, match=re.escape("its 1001 words (stop words included) over 1 field(s)")):
        SearchPlan(" ".join(["aspirin"] * 1001), **one)
    for mode in ("bm25", "rerank", "hybrid", "hybrid_rerank"):
        with pytest.raises(PlanError, match=re.escape("query is too long")):
            SearchPlan(PROBE_QUERY, mode=mode)
    assert SearchPlan(PROBE_QUERY, mode="dense").query == PROBE_QUERY
    with pytest.raises(PlanError, match=re.escape("query is too long")):
        SearchPlan(PROBE_QUERY, mode="dense").replace(mode="bm25")


def test_plan_error_keeps_its_param_through_a_pickle():
    with pytest.raises(PlanError) as err:
        SearchPlan(OVER_LIMIT)
    back = pickle.loads(pickle.dumps(err.value))
    assert (type(back), str(back), back.param) == (PlanError, str(err.value), "query")


# ------------------------------------------------------------------------------------------ embedded engine
def test_the_embedded_engine_answers_at_the_limit_and_gets_the_same_error_over_it(tmp_path, toy_encoder):
    idx = EmbeddedIndex.create(tmp_path / "ix", toy_encoder.info)
    with idx.writer() as w:
        w.add(DOCS, toy_encoder)
    plan = default_plan(AT_LIMIT, mode="bm25", k=3)
    assert [h.doc_id for h in idx.search(plan).hits] == [
        h.doc_id for h in idx.search(plan.replace(query="aspirin")).hits
    ]
    with pytest.raises(PlanError, match=re.escape(TOO_LONG)):
        idx.search(plan.replace(query=OVER_LIMIT))


# ----------------------------------------------------------------------------- Elasticsearch / OpenSearch
def _find(node, key):
    """The first value of ``key`` anywhere in a JSON body."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            found = _find(child, key)
            if found is not None:
                return found
    return None


@pytest.mark.parametrize("mode", ["bm25", "rerank", "hybrid", "hybrid_rerank"])
def test_the_cluster_compiler_sends_at_most_the_limit_and_gets_the_same_error_over_it(mode):
    pytest.importorskip("elasticsearch")
    pytest.importorskip("openapi_schema_validator")
    from es_biomed.query.es_compile import compile_search
    from tests import es_spec

    plan = default_plan(AT_LIMIT, mode=mode, k=10, window_size=50)
    body = compile_search(plan, [0.1] * 384)
    assert es_spec.errors(body) == []
    mm = _find(body, "multi_match")
    # what Lucene builds: one clause per term and field, under its maxClauseCount with room for the filters
    assert count_query_terms(mm["query"]) * len(mm["fields"]) == 999 <= MAX_QUERY_CLAUSES
    if mode in ("bm25", "rerank"):
        assert compile_search(plan, [0.1] * 384, dialect="opensearch")["query"]["multi_match"]["query"] == AT_LIMIT
    with pytest.raises(PlanError, match=re.escape(TOO_LONG)):
        compile_search(plan.replace(query=OVER_LIMIT), [0.1] * 384)


# ------------------------------------------------------------------------------------------ serve and CLI
@pytest.fixture
def client(tmp_path, toy_encoder):
    pytest.importorskip("fastapi")
    from es_biomed.search.searcher import Searcher
    from es_biomed.serve.app import create_app
    from es_biomed.serve.highlight import Highlighter
    from es_biomed.serve.routes import ServeState

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
        from starlette.testclient import TestClient

    idx = EmbeddedIndex.create(tmp_path / "ix", toy_encoder.info)
    with idx.writer() as w:
        w.add(DOCS, toy_encoder)
    idx.reload()
    state = ServeState(Searcher(idx, encoder=toy_encoder), Highlighter(idx.analyze), qa_error="unit tier")
    with TestClient(create_app(state=state)) as c:
        yield c


def test_serve_refuses_the_probes_query_with_a_422_naming_q_or_query(client):
    assert len(PROBE_QUERY) == 10_000
    r = client.get("/search", params={"q": PROBE_QUERY, "mode": "bm25"})
    assert r.status_code == 422, r.text
    assert r.json()["param"] == "q" and r.json()["message"].startswith("q: query is too long: its 1250 words")
    r = client.post("/search", json={"query": PROBE_QUERY, "mode": "bm25"})
    assert r.status_code == 422, r.text
    assert r.json()["param"] == "query" and "more than the 1000 a search may have" in r.json()["message"]
    assert client.get("/search", params={"q": AT_LIMIT, "mode": "bm25"}).status_code == 200


def test_cli_search_reports_the_limit(tmp_path):
    from es_biomed.cli import main

    res = CliRunner().invoke(main, ["search", OVER_LIMIT, "--index", str(tmp_path), "--no-rerank"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert f"Error: {TOO_LONG}" in res.output
