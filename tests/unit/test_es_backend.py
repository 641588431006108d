"""The Elasticsearch backend's HTTP traffic, offline.

No Elasticsearch server can run on these machines, so a small local HTTP server answers the handful of REST
calls the backend makes, the way Elasticsearch 9 does (with the ``X-Elastic-Product`` header the client
requires). It records every request; the tests check the 429 retry, the per-document failure report, the
deterministic ids, and validate every body the backend sent against the official API specification. The
live tier (``tests/live_es``) runs the same code against a real cluster.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import numpy as np
import pytest

pytest.importorskip("elasticsearch")
pytest.importorskip("openapi_schema_validator")

from es_biomed.backends.elasticsearch import ElasticsearchBackend, ESConfig, make_client  # noqa: E402
from es_biomed.corpus import Document  # noqa: E402
from es_biomed.errors import EncoderMismatchError  # noqa: E402
from es_biomed.query import SearchPlan  # noqa: E402
from es_biomed.query.es_compile import compile_search  # noqa: E402
from tests import es_spec  # noqa: E402

ALIAS = "es-biomed"


class FakeES:
    """State of the fake cluster: one index behind the alias, and scripted bulk answers."""

    def __init__(self, dims: int, fingerprint: str) -> None:
        self.requests: list[tuple[str, str, object]] = []
        self.docs: dict[str, dict] = {}
        self.alias_exists = False
        self.mapping = {
            "_meta": {"encoder": {"name": "toy-keywords", "dims": dims, "fingerprint": fingerprint}},
            "properties": {"embedding": {"type": "dense_vector", "dims": dims}},
        }
        self.bulk_calls = 0

    def handle(self, method: str, path: str, body: object) -> tuple[int, object]:
        self.requests.append((method, path, body))
        if path == "/":
            return 200, {"version": {"number": "9.1.3"}, "tagline": "You Know, for Search"}
        if path == f"/_alias/{ALIAS}":
            if not self.alias_exists:
                return 404, {"error": "alias missing", "status": 404}
            return 200, {f"{ALIAS}-v1": {"aliases": {ALIAS: {}}}}
        if path.startswith("/_index_template/") or path.startswith("/_scripts/"):
            return 200, {"acknowledged": True}
        if path.startswith(f"/{ALIAS}-v*"):
            return 200, {}
        if path == f"/{ALIAS}-v1" and method == "PUT":
            self.alias_exists = True
            return 200, {"acknowledged": True, "index": f"{ALIAS}-v1"}
        if path == f"/{ALIAS}-v1/_mapping":
            return 200, {f"{ALIAS}-v1": {"mappings": self.mapping}}
        if path == "/_bulk":
            return 200, self.bulk(body)
        if path.endswith("/_refresh"):
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if path.endswith("/_count"):
            return 200, {"count": len(self.docs)}
        if path.endswith("/_search"):
            hits = [
                {"_id": d, "_score": 2.0 - i / 10, "_source": {"title": s.get("title", "")}}
                for i, (d, s) in enumerate(self.docs.items())
            ]
            return 200, {
                "took": 1,
                "timed_out": False,
                "hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": hits},
            }
        return 404, {"error": f"no handler for {method} {path}", "status": 404}

    def bulk(self, lines: object) -> dict:
        """First call: doc 'b' is throttled (429), doc 'bad' fails mapping (400). Retries succeed."""
        self.bulk_calls += 1
        assert isinstance(lines, list)
        items = []
        for action, source in zip(lines[::2], lines[1::2], strict=True):
            _id = action["index"]["_id"]
            if _id == "bad":
                items.append(
                    {
                        "index": {
                            "_index": f"{ALIAS}-v1",
                            "_id": _id,
                            "status": 400,
                            "error": {"type": "document_parsing_exception", "reason": "failed to parse field [year]"},
                        }
                    }
                )
            elif _id == "b" and self.bulk_calls == 1:
                items.append(
                    {
                        "index": {
                            "_index": f"{ALIAS}-v1",
                            "_id": _id,
                            "status": 429,
                            "error": {"type": "es_rejected_execution_exception", "reason": "queue full"},
                        }
                    }
                )
            else:
                self.docs[_id] = source
                items.append({"index": {"_index": f"{ALIAS}-v1", "_id": _id, "status": 201, "result": "created"}})
        return {"took": 1, "errors": any(i["index"]["status"] >= 300 for i in items), "items": items}


@pytest.fixture
def fake(toy_encoder):
    state = FakeES(toy_encoder.dims, toy_encoder.fingerprint)

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if "ndjson" in (self.headers.get("Content-Type") or "") or self.path.split("?")[0] == "/_bulk":
                body: object = [json.loads(x) for x in raw.splitlines() if x.strip()]
            else:
                body = json.loads(raw) if raw else None
            status, payload = state.handle(self.command, urlparse(self.path).path, body)
            out = b"" if self.command == "HEAD" else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Type", "application/vnd.elasticsearch+json;compatible-with=9")
            self.send_header("Content-Length", str(len(json.dumps(payload).encode())))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _serve

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cfg = ESConfig(f"http://127.0.0.1:{server.server_address[1]}", username="elastic", password="s3cret-pw")
    backend = ElasticsearchBackend(make_client(cfg), alias=ALIAS, passages=False)
    yield state, backend, cfg
    server.shutdown()


def test_setup_then_bulk_with_429_retry_and_failure_report(fake, toy_encoder):
    state, backend, _ = fake
    result = backend.setup(toy_encoder.info)
    assert result["created"] == f"{ALIAS}-v1"
    docs = [
        Document(id="a", title="aspirin fever"),
        Document(id="b", title="heart stroke"),
        Document(id="bad", title="aspirin"),
    ]
    report = backend.index_documents(docs, toy_encoder, initial_backoff=0.01, max_backoff=0.02)
    assert report.ok == 2 and state.bulk_calls == 2  # 'b' throttled once, then retried
    assert report.failed == [
        {
            "id": "bad",
            "status": 400,
            "error": {"type": "document_parsing_exception", "reason": "failed to parse field [year]"},
        }
    ]
    assert set(state.docs) == {"a", "b"}
    assert state.docs["a"]["embedding"] == pytest.approx([0.7071068, 0.7071068, 0.0, 0.0])


def test_every_body_sent_validates_against_the_spec(fake, toy_encoder):
    state, backend, _ = fake
    backend.setup(toy_encoder.info)
    backend.index_documents([Document(id="a", title="aspirin", date="2020")], toy_encoder)
    qvec = toy_encoder.encode_queries(["aspirin"])[0]
    backend.search(SearchPlan("aspirin", k=3), qvec)
    refs = {
        "/_index_template/": es_spec.PUT_INDEX_TEMPLATE,
        "/_scripts/": es_spec.PUT_SCRIPT,
        "/_search": es_spec.SEARCH,
    }
    checked = 0
    for method, path, body in state.requests:
        if path == "/_bulk":
            for line in body[::2]:  # type: ignore[index]
                assert es_spec.errors(line, es_spec.BULK_ACTION) == [], line
                checked += 1
        for key, ref in refs.items():
            if key in path and body is not None:
                assert es_spec.errors(body, ref) == [], (path, es_spec.errors(body, ref)[:3])
                checked += 1
    assert checked >= 4
    (search_body,) = [b for m, p, b in state.requests if p.endswith("/_search")]
    assert search_body == compile_search(SearchPlan("aspirin", k=3), [float(x) for x in qvec])


def test_search_parses_hits_and_count(fake, toy_encoder):
    state, backend, _ = fake
    backend.setup(toy_encoder.info)
    backend.index_documents([Document(id="x1", title="aspirin"), Document(id="x2", title="fever")], toy_encoder)
    res = backend.search(SearchPlan("aspirin", mode="bm25"), with_sources=True)
    assert [h.doc_id for h in res.hits] == ["x1", "x2"] and res.sources["x1"] == {"title": "aspirin"}
    assert backend.count() == 2


def test_encoder_mismatch_is_refused_before_any_write(fake, toy_encoder):
    from tests.conftest import KeywordEncoder

    state, backend, _ = fake
    backend.setup(toy_encoder.info)
    other = KeywordEncoder(["a", "b", "c"])
    with pytest.raises(EncoderMismatchError, match="maps 4-dim vectors but encoder 'toy-keywords' produces 3"):
        backend.index_documents([Document(id="z", title="a")], other)
    assert state.bulk_calls == 0


def test_config_never_shows_credentials(fake):
    _, _, cfg = fake
    assert "s3cret-pw" not in repr(cfg)
    env = {"ES_URL": "https://elastic:pw123@host:9200", "ES_API_KEY": "key-abc"}
    loaded = ESConfig.from_env(env)
    assert "pw123" not in repr(loaded) and "key-abc" not in repr(loaded)
    assert (
        loaded.redact("failed: https://elastic:pw123@host:9200 with key-abc")
        == "failed: https://***@host:9200 with ***"
    )


def test_document_vectors_round_trip(fake, toy_encoder):
    state, backend, _ = fake
    backend.setup(toy_encoder.info)
    doc = Document(id="long", title="aspirin", body=" ".join(["fever"] * 450))
    backend.index_documents([doc], toy_encoder)
    src = state.docs["long"]
    assert len(src["passages"]) == 4  # passage 0 + 450 words in windows of 200 overlapping by 50
    assert np.allclose(src["embedding"], src["passages"][0]["embedding"])
