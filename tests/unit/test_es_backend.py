"""The cluster backend's HTTP traffic, offline (the unit tier runs no server).

A small local HTTP server answers the handful of REST calls the backend makes, the way Elasticsearch 9 does
(with the ``X-Elastic-Product`` header the client requires), records every request, and scripts per-document
429s and mapping failures. The tests check the 429 retry, the per-document failure report, the deterministic
ids, and validate every body the backend sent against the official API specification. The live tier
(``tests/live``) runs the same code against real OpenSearch and Elasticsearch nodes.
"""

from __future__ import annotations

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
from tests.fake_es import ALIAS, FakeES, serve  # noqa: E402


@pytest.fixture
def fake(toy_encoder):
    state = FakeES(toy_encoder.dims, toy_encoder.fingerprint)
    server, url = serve(state)
    cfg = ESConfig(url, username="elastic", password="s3cret-pw")
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
    for _method, path, body in state.requests:
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
