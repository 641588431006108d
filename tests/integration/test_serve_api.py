"""``es-biomed serve`` for real: uvicorn in its own process on a free loopback port, the real MiniLM, real CORD-19
abstracts; the API over a socket, concurrent clients, bad input, and /ask with the QA model of es_biomed.qa."""

# ruff: noqa: F811 (the fixtures imported from tests.serve_server are function arguments here)
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.serve_server import OWN_DOCS, XSS_TITLE, serve_index, server  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.precision]
QUERY = "neuraminidase inhibitor influenza symptoms"


def get(server, path, **params):
    return httpx.get(f"{server.url}{path}", params=params, timeout=60.0)


def test_health_reports_the_index_and_the_encoder(server, serve_index):
    from es_biomed.backends import EmbeddedIndex

    h = get(server, "/health").json()
    recorded = EmbeddedIndex.read_config(serve_index).encoder
    assert h["index"]["path"] == str(serve_index)
    assert h["index"]["documents"] == 150 + len(OWN_DOCS)
    assert "test" in h["index"]["sources"] and h["index"]["years"][1] >= 2024
    # the query path may run on the fp32 ONNX export: another name, the same identity
    assert h["encoder"]["fingerprint"] == recorded["fingerprint"] and h["encoder"]["dims"] == 384
    assert h["encoder"]["index_encoder"] == recorded["name"] == "all-MiniLM-L6-v2"


def test_rerank_hits_carry_their_score_parts_and_evidence(server):
    r = get(server, "/search", q=QUERY, k=5)
    assert r.status_code == 200
    body = r.json()
    assert body["mode"] == "rerank" and body["window_size"] == 30
    hits = body["hits"]
    top = hits[0]
    assert top["doc_id"] == "answer-1"
    assert (top["year"], top["source"], top["doi_url"], top["pubmed_url"]) == (
        2019,
        "test",
        "https://doi.org/10.1000/example.123",
        "https://pubmed.ncbi.nlm.nih.gov/31000001/",
    )
    marked = {top["snippet"]["text"][s:e].lower() for s, e in top["snippet"]["highlights"]}
    assert {"neuraminidase", "inhibitor", "influenza", "symptoms"} <= marked
    finals = [h["scores"]["final"] for h in hits]
    assert finals == sorted(finals, reverse=True)
    for h in hits:  # the tuned preset: total = bm25 + 75 * (cosine + 1) inside the window
        s = h["scores"]
        assert -1.0 <= s["cosine"] <= 1.0 and s["rrf"] is None
        assert s["final"] == pytest.approx(s["bm25"] + 75.0 * (s["cosine"] + 1.0), rel=1e-6)


def test_modes_and_filters(server):
    bm25 = get(server, "/search", q=QUERY, mode="bm25", k=5).json()["hits"]
    assert all(h["scores"]["cosine"] is None and h["scores"]["final"] == h["scores"]["bm25"] for h in bm25)
    hybrid = get(server, "/search", q=QUERY, mode="hybrid", k=5).json()["hits"]
    assert all(h["scores"]["final"] == h["scores"]["rrf"] for h in hybrid)
    dense = get(server, "/search", q=QUERY, mode="dense", k=3).json()["hits"]
    assert all(h["scores"]["bm25"] is None for h in dense)
    only = get(server, "/search", q=QUERY, source="test", year_from=2019, year_to=2019).json()["hits"]
    assert [h["doc_id"] for h in only] == ["answer-1"]
    plan = {"query": QUERY, "mode": "bm25", "k": 3, "fields": {"title": 1.0}, "filters": {"sources": ["test"]}}
    posted = httpx.post(f"{server.url}/search", json=plan, timeout=60).json()["hits"]
    assert [h["doc_id"] for h in posted] == ["answer-1"]  # its title has "influenza"; the XSS title has none


def test_markup_in_a_title_comes_back_as_plain_text(server):
    hit = next(h for h in get(server, "/search", q="zanamivir escaping", k=3).json()["hits"] if h["doc_id"] == "xss-1")
    assert hit["title"] == XSS_TITLE
    assert "<b>bold</b>" in hit["snippet"]["text"]  # JSON carries text; the page renders it with textContent


def test_sixteen_concurrent_clients_get_the_sequential_answers(server):
    queries = [QUERY, "coronavirus transmission", "vaccine efficacy", "cytokine storm", "escitalopram depression"]
    expected = {q: [h["doc_id"] for h in get(server, "/search", q=q).json()["hits"]] for q in queries}
    with httpx.Client(timeout=120) as client, ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(client.get, f"{server.url}/search", params={"q": q}) for q in queries * 10]
        responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [200] * len(responses)
    for q, r in zip(queries * 10, responses, strict=True):
        assert [h["doc_id"] for h in r.json()["hits"]] == expected[q]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"q": ""}, "q"),
        ({"q": "x" * 10_001}, "q"),
        ({"q": "flu", "k": 0}, "k"),
        ({"q": "flu", "k": 1001}, "k"),
        ({"q": "flu", "mode": "vibes"}, "mode"),
        ({"q": "flu", "year_from": 2022, "year_to": 2020}, "year_from"),
    ],
)
def test_bad_input_over_the_socket_is_a_4xx_naming_the_parameter(server, params, param):
    r = get(server, "/search", **params)
    assert r.status_code == 422 and r.json()["param"] == param


def test_malformed_json_is_a_400(server):
    r = httpx.post(f"{server.url}/search", content=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["param"] == "body"


def test_limits_over_the_socket_are_4xx_in_the_documented_shape(server):
    """The probe's inputs against uvicorn itself: a year outside an i64 (was a 500), a body over the limit (with
    Content-Length, and streamed chunked without one), JSON nested 1,000 deep, a body that is not UTF-8, a weight of
    1e308 (was a 200 with null scores), and a 10,000-character query (OpenSearch's maxClauseCount)."""

    def post(content, **headers):
        url = f"{server.url}/search"
        return httpx.post(url, content=content, headers={"content-type": "application/json", **headers}, timeout=60.0)

    def check(r, status, param):
        assert r.status_code == status, r.text
        assert set(r.json()) == {"param", "message", "detail"} and r.json()["param"] == param, r.text

    check(get(server, "/search", q="flu", year_from="9223372036854775808"), 422, "year_from")
    check(
        httpx.post(f"{server.url}/search", json={"query": "flu", "filters": {"sources": ["x"] * 450_000}}), 413, "body"
    )

    def chunks():
        for _ in range(32):  # 2 MiB, no Content-Length
            yield b" " * 65536

    check(post(chunks()), 413, "body")
    check(post(("[" * 1000 + "]" * 1000).encode()), 400, "body")
    check(post('{"query": "grippe à"}'.encode("latin-1")), 400, "body")
    check(httpx.post(f"{server.url}/search", json={"query": "flu", "query_weight": 1e308}), 422, "query_weight")
    check(get(server, "/search", q="influenza " * 1000), 422, "q")
    if get(server, "/health").json()["qa"]["available"]:  # a question too long for the retrieval's plan
        check(get(server, "/ask", q="influenza " * 1000), 422, "q")
    assert get(server, "/health").status_code == 200  # and the service is still up


def test_ask_answers_with_evidence(server):
    """The answers and their evidence as the reader gives them (what the reader finds is es_biomed.qa's to test):
    each stands in its sentence, in a document the rerank search retrieved, with that document's title and year."""
    qa = get(server, "/health").json()["qa"]
    assert qa["available"], f"/ask is not available: {qa['error']}"
    question = "Which neuraminidase inhibitor shortened influenza symptoms in adults?"
    r = get(server, "/ask", q=question, k=5)
    assert r.status_code == 200
    body = r.json()
    assert body["question"] == question and 1 <= len(body["answers"]) <= 5
    hits = {h["doc_id"]: h for h in get(server, "/search", q=question, k=20).json()["hits"]}
    for a in body["answers"]:
        assert a["doc_id"] in hits
        assert (a["title"], a["year"]) == (hits[a["doc_id"]]["title"], hits[a["doc_id"]]["year"])
        assert a["text"] and a["text"] in a["sentence"] and a["field"] in ("title", "abstract", "body")
        assert 0 <= a["start"] < a["end"]
    scores = [a["score"] for a in body["answers"]]
    assert scores == sorted(scores, reverse=True)
    bm25 = get(server, "/ask", q=question, mode="bm25")
    assert bm25.status_code == 200 and bm25.json()["answers"]


def test_another_encoder_is_refused_before_the_server_starts(serve_index):
    from click.testing import CliRunner

    from es_biomed.cli.serve import serve

    res = CliRunner().invoke(serve, ["--index", str(serve_index), "--encoder", "biomed-minilm", "--no-qa"])
    assert res.exit_code == 1
    # the query path may load the encoder's fp32 ONNX variant (biomed-minilm-onnx): same identity, its own name
    assert "was built with encoder 'all-MiniLM-L6-v2'" in res.output and "got 'biomed-minilm" in res.output


def test_the_event_loop_answers_while_a_question_is_read(server):
    """/ask runs the reader in the worker pool: /health keeps answering meanwhile (a blocked loop would hold it
    until the answer is done)."""
    import threading
    import time

    assert get(server, "/health").json()["qa"]["available"]
    finished: dict[str, float] = {}

    def ask() -> None:
        assert get(server, "/ask", q="Which neuraminidase inhibitor shortened influenza symptoms?").status_code == 200
        finished["ask"] = time.perf_counter()

    thread = threading.Thread(target=ask)
    thread.start()
    time.sleep(0.05)
    health_done = []
    while thread.is_alive() and len(health_done) < 20:
        assert get(server, "/health").status_code == 200
        health_done.append(time.perf_counter())
    thread.join()
    assert health_done and health_done[0] < finished["ask"]


def test_create_app_loads_the_index_once_in_its_lifespan(serve_index):
    import warnings

    from es_biomed.serve.app import create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
        from starlette.testclient import TestClient

    app = create_app(serve_index, qa=False)
    with TestClient(app) as client:  # runs the lifespan: index, encoder (one warm-up query)
        state = app.state.serve
        assert client.get("/search", params={"q": QUERY, "k": 1}).json()["hits"][0]["doc_id"] == "answer-1"
        assert client.get("/search", params={"q": "flu vaccine", "k": 1}).status_code == 200
        assert app.state.serve is state  # the same searcher and encoder serve every request
        assert client.get("/health").json()["qa"]["error"] == "disabled (--no-qa)"


def _first_vector(obj):  # type: ignore[no-untyped-def]
    """The first ``query_vector`` / ``query_value`` list anywhere in a request body."""
    if isinstance(obj, dict):
        for key, val in obj.items():
            if key in ("query_vector", "query_value") and isinstance(val, list):
                return val
            found = _first_vector(val)
            if found is not None:
                return found
    if isinstance(obj, list):
        for val in obj:
            found = _first_vector(val)
            if found is not None:
                return found
    return None


def test_embed_gives_any_client_the_index_encoders_vectors(server, serve_index):
    """POST /embed: the vectors a search would use, with the encoder's identity; equal to --print-request's."""
    import json
    import subprocess
    import sys

    import numpy as np

    from es_biomed.search import Searcher

    texts = [QUERY, "coronavirus transmission", "vaccine efficacy"]
    r = httpx.post(f"{server.url}/embed", json={"texts": texts}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    enc = Searcher(serve_index).encoder
    assert (body["kind"], body["dims"], body["encoder"]["fingerprint"]) == ("query", 384, enc.fingerprint)
    assert body["encoder"]["index_encoder"] == "all-MiniLM-L6-v2"
    got = np.asarray(body["vectors"], dtype=np.float32)
    assert got.shape == (3, 384) and np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.abs(got - enc.encode_queries(texts)).max() <= 1e-5
    out = subprocess.run(
        [sys.executable, "-m", "es_biomed.cli", "search", QUERY, "--index", str(serve_index), "--print-request"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    printed = np.asarray(_first_vector(json.loads(out.stdout)), dtype=np.float32)
    assert np.abs(got[0] - printed).max() <= 1e-5  # the same encoder identity, within its tolerance
    docs = httpx.post(f"{server.url}/embed", json={"texts": texts[:1], "kind": "document"}, timeout=60).json()
    assert (
        docs["kind"] == "document"
        and np.abs(np.asarray(docs["vectors"][0]) - enc.encode_documents(texts[:1])[0]).max() <= 1e-5
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "texts"),
        ({"texts": []}, "texts"),
        ({"texts": ["a"] * 65}, "texts"),
        ({"texts": ["x" * 10_001]}, "texts"),
        ({"texts": [1]}, "texts"),
        ({"texts": ["   "]}, "texts"),
        ({"texts": "a single string"}, "texts"),
        ({"texts": ["a"], "kind": "passage"}, "kind"),
        ({"texts": ["a"], "vectors": True}, "vectors"),
    ],
)
def test_embed_refuses_bad_input_by_name(server, body, param):
    r = httpx.post(f"{server.url}/embed", json=body, timeout=60)
    assert r.status_code == 422, r.text
    assert r.json()["param"] == param


def test_embed_is_in_the_openapi_document(server):
    spec = get(server, "/openapi.json").json()
    op = spec["paths"]["/embed"]["post"]
    assert set(op["responses"]) >= {"200", "422"}
    assert "texts" in spec["components"]["schemas"]["EmbedBody"]["properties"]
