"""``es-biomed serve``: every bad input is a 4xx JSON error naming the parameter, and good input gives ranked hits
with score parts. The API runs in-process (FastAPI's TestClient, no socket) over a 4-document index with the toy
encoder; the real model, a real server and a real browser are in tests/integration/test_serve*.py."""

from __future__ import annotations

import json
import math
import re
import warnings

import pytest
from click.testing import CliRunner

from es_biomed.backends import EmbeddedIndex
from es_biomed.cli.serve import is_loopback, serve
from es_biomed.corpus import Document
from es_biomed.search.searcher import Searcher
from es_biomed.serve.app import create_app
from es_biomed.serve.highlight import Highlighter
from es_biomed.serve.routes import ServeState
from es_biomed.serve.schemas import (
    MAX_BODY_BYTES,
    MAX_QUERY_CHARS,
    MAX_SOURCE_CHARS,
    MAX_SOURCES,
    ParamError,
    PlanBody,
    plan_from_body,
    plan_from_params,
)

with warnings.catch_warnings():  # Starlette 1.x would rather have httpx2 under its TestClient; httpx 0.28 works
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

DOCS = [
    Document(id="d1", title="Aspirin", abstract="aspirin aspirin lowers fever", source="pubmed", date="2010-01-01"),
    Document(id="d2", abstract="aspirin and heart attacks in older adults", source="pmc", date="2015", doi="10.1/x"),
    Document(id="d3", abstract="aspirin after stroke", source="pubmed", date="2020", pmid="123"),
    Document(id="d4", abstract="ibuprofen lowers fever in children", source="pmc", date="2021"),
]


@pytest.fixture
def client(tmp_path, toy_encoder):
    idx = EmbeddedIndex.create(tmp_path / "ix", toy_encoder.info)
    with idx.writer() as w:
        w.add(DOCS, toy_encoder)
    idx.reload()
    searcher = Searcher(idx, encoder=toy_encoder)
    state = ServeState(searcher, Highlighter(idx.analyze), qa_error="no QA model in the unit tier")
    with TestClient(create_app(state=state)) as c:
        yield c


# ------------------------------------------------------------------------------------ plan_from_params / body
@pytest.mark.parametrize(
    ("kwargs", "param", "message"),
    [
        ({"q": ""}, "q", "q: must not be empty"),
        ({"q": " \t "}, "q", "q: must not be empty"),
        ({"q": None}, "q", "q: must not be empty"),
        ({"q": "x" * (MAX_QUERY_CHARS + 1)}, "q", "q: must be at most 10000 characters, got 10001"),
        ({"q": "a", "k": 0}, "k", "k: must be between 1 and 1000, got 0"),
        ({"q": "a", "k": -3}, "k", "k: must be between 1 and 1000, got -3"),
        ({"q": "a", "k": 1001}, "k", "k: must be between 1 and 1000, got 1001"),
        ({"q": "a", "mode": "semantic"}, "mode", "mode: must be one of bm25, rerank, dense, hybrid, hybrid_rerank"),
        ({"q": "a", "year_from": 2021, "year_to": 2020}, "year_from", "year_from: is after year_to (2021 > 2020)"),
        (
            {"q": "a", "year_from": 2**63},
            "year_from",
            "year_from: must be a year from 0 to 9999, got 9223372036854775808",
        ),
        ({"q": "a", "year_to": -1}, "year_to", "year_to: must be a year from 0 to 9999, got -1"),
        ({"q": "a", "window": 0}, "window", "window: must be between 1 and 10000, got 0"),
        ({"q": "a", "mode": "hybrid", "k": 40, "window": 20}, "window", "window: must be at least k (40)"),
    ],
)
def test_plan_from_params_names_the_bad_parameter(kwargs, param, message):
    with pytest.raises(ParamError, match=re.escape(message)) as err:
        plan_from_params(**kwargs)
    assert err.value.param == param and err.value.status == 422


def test_plan_from_params_takes_the_preset_and_the_filters():
    plan = plan_from_params("aspirin", mode="bm25", k=5, sources=["pubmed", ""], year_from=2010, year_to=2010)
    assert (plan.mode, plan.k, plan.window_size, plan.rescore_query_weight) == ("bm25", 5, 30, 75.0)
    assert (plan.filters.sources, plan.filters.year_from, plan.filters.year_to) == (("pubmed",), 2010, 2010)
    # hybrid returns at most window_size hits: an unset window grows to k
    assert plan_from_params("aspirin", mode="hybrid", k=100).window_size == 100


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": " "}, "query"),
        ({"query": "a", "filters": {"year_from": 2001, "year_to": 2000}}, "filters.year_from"),
        ({"query": "a", "fields": {}}, "fields"),
        ({"query": "a", "fields": {"title": -1.0}}, "fields.title"),
        ({"query": "a", "mode": "hybrid", "k": 60, "window_size": 10}, "window_size"),
    ],
)
def test_plan_from_body_names_the_bad_field(body, param):
    with pytest.raises(ParamError) as err:
        plan_from_body(PlanBody(**body))
    assert err.value.param == param


def test_plan_from_body_sets_only_what_is_given():
    plan = plan_from_body(PlanBody(query="a", k=3, score_mode="max", fields={"title": 2.0}))
    assert (plan.k, plan.score_mode, plan.fields, plan.window_size, plan.match_type) == (
        3,
        "max",
        (("title", 2.0),),
        30,
        "most_fields",
    )


# ----------------------------------------------------------------------------------------------------- HTTP
@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({}, "q"),
        ({"q": "a" * (MAX_QUERY_CHARS + 1)}, "q"),
        ({"q": "aspirin", "k": "0"}, "k"),
        ({"q": "aspirin", "k": "-1"}, "k"),
        ({"q": "aspirin", "k": "1001"}, "k"),
        ({"q": "aspirin", "k": "ten"}, "k"),
        ({"q": "aspirin", "mode": "semantic"}, "mode"),
        ({"q": "aspirin", "year_from": "2021", "year_to": "2010"}, "year_from"),
        ({"q": "aspirin", "year_from": "last year"}, "year_from"),
        ({"q": "aspirin", "year_from": "9223372036854775808"}, "year_from"),  # was a 500 from tantivy (not an i64)
        ({"q": "aspirin", "year_from": "10000"}, "year_from"),
        ({"q": "aspirin", "year_to": "-1"}, "year_to"),
        ({"q": "aspirin", "window": "0"}, "window"),
    ],
)
def test_get_search_bad_input_is_a_422_naming_the_parameter(client, params, param):
    r = client.get("/search", params=params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["param"] == param
    assert body["message"].startswith(f"{param}: ")
    assert body["detail"] and body["detail"][0]["loc"][-1] == param


def test_post_search_malformed_json_is_a_400_naming_the_body(client):
    r = client.post("/search", content=b'{"query": "aspirin", ', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["param"] == "body"
    assert r.json()["message"].startswith("body: malformed JSON: ")


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ([1, 2], 422, "body"),
        ({"k": 3}, 422, "query"),
        ({"query": ""}, 422, "query"),
        ({"query": "a" * (MAX_QUERY_CHARS + 1)}, 422, "query"),
        ({"query": "aspirin", "k": 0}, 422, "k"),
        ({"query": "aspirin", "k": 1001}, 422, "k"),
        ({"query": "aspirin", "mode": "semantic"}, 422, "mode"),
        ({"query": "aspirin", "filters": {"year_from": 2021, "year_to": 2010}}, 422, "filters.year_from"),
        ({"query": "aspirin", "filters": {"sources": "pubmed"}}, 422, "filters.sources"),
        ({"query": "aspirin", "filters": {"year_from": 9223372036854775808}}, 422, "filters.year_from"),
        ({"query": "aspirin", "filters": {"year_to": -(2**63) - 1}}, 422, "filters.year_to"),
        ({"query": "aspirin", "fields": {"mesh": 1.0}}, 422, "fields.mesh"),
        ({"query": "aspirin", "colour": "red"}, 422, "colour"),
    ],
)
def test_post_search_bad_plan_names_the_field(client, body, status, param):
    r = client.post("/search", json=body)
    assert r.status_code == status, r.text
    assert r.json()["param"] == param


# ----------------------------------------------------------------------------------- limits (probe findings)
def _post_raw(client, content, **headers):
    return client.post("/search", content=content, headers={"content-type": "application/json", **headers})


def _assert_documented_error(r, status, param):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"param", "message", "detail"} and body["param"] == param, body
    assert body["message"].startswith(f"{param}: ") and body["detail"], body
    return body


def test_a_body_over_the_limit_is_a_413_naming_the_body_and_the_limit(client):
    """One 5.3 MB body of 450,000 sources took the process from 325 MB to 1.2 GB; now it is refused unread."""
    sources = ["pubmed"] * 450_000
    r = client.post("/search", json={"query": "aspirin", "filters": {"sources": sources}})
    body = _assert_documented_error(r, 413, "body")
    assert f"must be at most {MAX_BODY_BYTES} bytes, got " in body["message"]
    # one byte over, announced by Content-Length
    big = b'{"query": "' + b"a" * (MAX_BODY_BYTES - 12) + b'"}'
    assert len(big) == MAX_BODY_BYTES + 1
    body = _assert_documented_error(_post_raw(client, big), 413, "body")
    assert body["message"] == f"body: must be at most {MAX_BODY_BYTES} bytes, got {MAX_BODY_BYTES + 1}"
    # at the limit it is read (and refused for its query length, not its size)
    _assert_documented_error(_post_raw(client, big[:-3] + b'"}'), 422, "query")


def test_a_streamed_body_is_counted_and_refused_past_the_limit(client):
    """Without Content-Length (chunked), the bytes are counted as they arrive and reading stops past the limit.
    The app is driven over ASGI directly: the test client would gather the whole body before sending it."""
    import anyio

    chunk, offered, pulled, sent = 65536, 64, 0, []  # 4 MiB on offer

    async def receive():
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b" " * chunk, "more_body": pulled < offered}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/search",
        "raw_path": b"/search",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    anyio.run(client.app, scope, receive, send)
    assert sent[0]["status"] == 413
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["param"] == "body"
    assert body["message"] == f"body: must be at most {MAX_BODY_BYTES} bytes, got more than that"
    assert pulled == MAX_BODY_BYTES // chunk + 1  # stopped at the first chunk past the limit


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (("[" * 1000 + "]" * 1000).encode(), "body: malformed JSON: nested too deeply"),
        (('{"query": ' + "[" * 100_000 + "]" * 100_000 + "}").encode(), "body: malformed JSON: nested too deeply"),
        ('{"query": "fièvre"}'.encode("latin-1"), "body: is not UTF-8 (byte 0xe8 at position 13)"),
        (b'{"query": "\xff\xfe"}', "body: is not UTF-8 (byte 0xff at position 11)"),
        (b'{"query": "a", "k": 1' + b"0" * 5000 + b"}", "body: malformed JSON: Exceeds the limit (4300 digits)"),
    ],
)
def test_every_unparsable_body_is_a_400_in_the_documented_shape(client, content, message):
    """FastAPI answered these with {"detail": "There was an error parsing the body"}."""
    body = _assert_documented_error(_post_raw(client, content), 400, "body")
    assert body["message"].startswith(message), body


@pytest.mark.parametrize(
    ("body", "param", "limit"),
    [
        ({"filters": {"sources": ["pubmed"] * (MAX_SOURCES + 1)}}, "filters.sources", str(MAX_SOURCES)),
        ({"filters": {"sources": ["p" * (MAX_SOURCE_CHARS + 1)]}}, "filters.sources", str(MAX_SOURCE_CHARS)),
        ({"query_weight": 1e308}, "query_weight", "1000000"),
        ({"rescore_query_weight": 1e308}, "rescore_query_weight", "1000000"),
        ({"rescore_query_weight": -1e7}, "rescore_query_weight", "-1000000"),
        ({"fields": {"title": 1e300}}, "fields.title", "1,000,000"),
        ({"mode": "hybrid", "rank_constant": 10**400}, "rank_constant", "2147483647"),  # was a 500 (OverflowError)
    ],
)
def test_post_search_limits_are_422_naming_the_field_and_the_limit(client, body, param, limit):
    r = client.post("/search", json={"query": "aspirin", **body})
    msg = _assert_documented_error(r, 422, param)["message"]
    assert limit in msg, msg


@pytest.mark.parametrize("content", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize("param", ["query_weight", "rescore_query_weight"])
def test_post_search_refuses_non_finite_weights(client, param, content):
    """Python's json reads NaN and Infinity; the weights must be finite numbers."""
    r = _post_raw(client, b'{"query": "aspirin", "%s": %s}' % (param.encode(), content))
    _assert_documented_error(r, 422, param)


@pytest.mark.parametrize(
    ("params", "limit"),
    [
        ({"q": "aspirin", "source": ["pubmed"] * (MAX_SOURCES + 1)}, str(MAX_SOURCES)),
        ({"q": "aspirin", "source": ["p" * (MAX_SOURCE_CHARS + 1)]}, str(MAX_SOURCE_CHARS)),
    ],
)
def test_get_search_caps_the_sources(client, params, limit):
    msg = _assert_documented_error(client.get("/search", params=params), 422, "source")["message"]
    assert limit in msg, msg


@pytest.mark.parametrize(
    ("call", "param", "message"),
    [
        (
            lambda: plan_from_params("a", sources=["s"] * (MAX_SOURCES + 1)),
            "source",
            "source: must name at most 100 sources, got 101",
        ),
        (
            lambda: plan_from_body(PlanBody.model_construct(query="a", k=10, mode="rerank", query_weight=1e308)),
            "query_weight",
            "query_weight: must be between -1,000,000 and 1,000,000, got 1e+308",
        ),
        (
            lambda: plan_from_body(PlanBody.model_construct(query="a", k=10, mode="rerank", query_weight=math.nan)),
            "query_weight",
            "query_weight: must be a finite number, got nan",
        ),
    ],
)
def test_library_callers_of_the_schemas_get_the_same_limits(call, param, message):
    with pytest.raises(ParamError, match=re.escape(message)) as err:
        call()
    assert err.value.param == param


def _no_constants(name):
    raise AssertionError(f"the JSON holds {name}")


@pytest.mark.parametrize(
    "body",
    [
        {"query": "aspirin fever", "query_weight": 1e6, "rescore_query_weight": 1e6, "score_mode": "multiply"},
        {"query": "aspirin fever", "query_weight": -1e6, "rescore_query_weight": 1e6, "fields": {"title": 1e6}},
        {"query": "aspirin fever", "mode": "hybrid_rerank", "rescore_query_weight": 1e6},
    ],
)
def test_largest_weights_give_finite_scores_in_the_json(client, body):
    r = client.post("/search", json=body)
    assert r.status_code == 200, r.text
    hits = json.loads(r.text, parse_constant=_no_constants)["hits"]
    assert hits and all(isinstance(h["scores"]["final"], float) and math.isfinite(h["scores"]["final"]) for h in hits)


def test_a_non_finite_score_is_a_422_naming_the_weights_not_a_null(client):
    """The safety net behind the weight limits: a plan that slipped past them (forced here) is refused."""
    plan = plan_from_body(PlanBody(query="aspirin", mode="bm25"))
    object.__setattr__(plan, "query_weight", 1e308)  # what validation would refuse
    object.__setattr__(plan, "fields", (("abstract", 1e308),))
    state = client.app.state.serve
    with pytest.raises(ParamError, match=re.escape("weights: the scores are not finite numbers")) as err:
        state.search(plan)
    assert err.value.status == 422


@pytest.mark.parametrize(
    ("params", "param"), [({"q": ""}, "q"), ({"q": "x" * 10_001}, "q"), ({"q": "a", "k": 0}, "k")]
)
def test_ask_bad_input_is_a_422(client, params, param):
    r = client.get("/ask", params=params)
    assert (r.status_code, r.json()["param"]) == (422, param)


def test_ask_without_qa_is_a_503_with_the_reason(client):
    r = client.get("/ask", params={"q": "what lowers fever?"})
    assert r.status_code == 503
    assert r.json()["message"] == "question answering is not available: no QA model in the unit tier"


def test_get_search_ranks_with_score_parts_links_and_highlights(client):
    r = client.get("/search", params={"q": "aspirin", "mode": "bm25", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert [h["doc_id"] for h in body["hits"]] == ["d1", "d3", "d2"]  # tests/unit/test_embedded.py works it out
    d1, d3, d2 = body["hits"]
    # the tuned preset: most_fields with title boost 0.5; d1 gains from its title "Aspirin"
    assert d1["scores"] == {"bm25": d1["scores"]["final"], "cosine": None, "rrf": None, "final": d1["scores"]["final"]}
    assert d1["scores"]["final"] > d3["scores"]["final"] > d2["scores"]["final"] > 0
    assert d1["title"] == "Aspirin" and d1["title_highlights"] == [[0, 7]] and d1["year"] == 2010
    assert d1["snippet"] == {
        "field": "abstract",
        "text": "aspirin aspirin lowers fever",
        "highlights": [[0, 7], [8, 15]],
    }
    assert (d2["doi_url"], d2["pubmed_url"]) == ("https://doi.org/10.1/x", None)
    assert (d3["pmid"], d3["pubmed_url"]) == ("123", "https://pubmed.ncbi.nlm.nih.gov/123/")


def test_rerank_and_filters_over_http(client):
    r = client.get("/search", params={"q": "aspirin", "window": 10, "source": "pubmed", "year_from": 2015})
    hits = r.json()["hits"]
    assert [h["doc_id"] for h in hits] == ["d3"]
    s = hits[0]["scores"]
    assert s["final"] == pytest.approx(s["bm25"] + 75.0 * (s["cosine"] + 1.0))  # the tuned preset's weight


def test_post_search_runs_the_plan(client):
    r = client.post("/search", json={"query": "aspirin", "mode": "bm25", "k": 2, "filters": {"sources": ["pmc"]}})
    assert r.status_code == 200
    assert [h["doc_id"] for h in r.json()["hits"]] == ["d2"]


def test_health_reports_index_and_encoder(client):
    h = client.get("/health").json()
    assert h["index"]["documents"] == 4
    assert h["index"]["sources"] == {"pmc": 2, "pubmed": 2} and h["index"]["years"] == [2010, 2021]
    assert (h["encoder"]["name"], h["encoder"]["fingerprint"]) == ("toy-keywords", "toy-aspirin-fever-heart-stroke")
    assert h["qa"] == {"available": False, "reader": None, "error": "no QA model in the unit tier"}


def test_page_and_assets_are_local_with_a_strict_csp(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    srcs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert srcs and all(s.startswith("/") or s.startswith("data:") for s in srcs), srcs
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    assert "innerHTML" not in client.get("/static/app.js").text


def test_openapi_and_offline_docs(client):
    spec = client.get("/openapi.json").json()
    assert {"/search", "/ask", "/health"} <= set(spec["paths"])
    assert {"get", "post"} <= set(spec["paths"]["/search"])
    docs = client.get("/docs").text
    assert "cdn" not in docs.lower()
    assert client.get(re.search(r'src="([^"]+swagger-ui-bundle.js)"', docs).group(1)).status_code == 200


# ------------------------------------------------------------------------------------------------------ CLI
def test_cli_search_refuses_a_year_outside_the_range(tmp_path):
    from es_biomed.cli import main

    res = CliRunner().invoke(
        main, ["search", "aspirin", "--index", str(tmp_path), "--no-rerank", "--year-from", "9223372036854775808"]
    )
    assert res.exit_code == 1 and res.exception is not None and isinstance(res.exception, SystemExit), res.output
    assert "Error: year_from must be a year from 0 to 9999, got 9223372036854775808" in res.output


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_serve_defaults_to_loopback_and_refuses_a_missing_index(tmp_path):
    opt = {p.name: p for p in serve.params}
    assert opt["host"].default == "127.0.0.1" and opt["port"].default == 8080
    assert "no authentication" in serve.help
    res = CliRunner().invoke(serve, ["--index", str(tmp_path)])
    assert res.exit_code == 1 and f"no es-biomed index at {tmp_path}" in res.output
