"""The query batcher of ``es-biomed serve`` (issue 23): concurrent callers share encoder calls, each gets the vector
its text has alone, errors and shutdown reach every waiter, and a lone query does not wait.

The encoder is the toy keyword encoder (exact arithmetic) behind a gate that holds its first call, so that the
next texts are known to wait together; one test runs the real MiniLM query path (its ONNX export) for the
tolerance of batched against single encodings.
"""

from __future__ import annotations

import re
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from es_biomed.serve.batcher import DEFAULT_MAX_WAIT_MS, BatcherClosedError, QueryBatcher
from tests.conftest import KeywordEncoder

TEXTS = [
    "aspirin",
    "fever fever",
    "heart stroke",
    "aspirin heart",
    "stroke",
    "fever and aspirin",
    "nothing known",
    "heart heart heart",
]


class GatedEncoder(KeywordEncoder):
    """The toy encoder, recording each call's texts; while ``gate`` is set, a call waits for ``release``."""

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__(["aspirin", "fever", "heart", "stroke"])
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.gate = False
        self.fail_on = fail_on

    def encode_queries(self, queries, batch_size=32, show_progress=False):  # type: ignore[no-untyped-def]
        self.batches.append(list(queries))
        self.entered.set()
        if self.gate:
            assert self.release.wait(10), "the test never released the encoder"
        if self.fail_on is not None and self.fail_on in queries:
            raise RuntimeError(f"cannot encode {self.fail_on!r}")
        return super().encode_queries(queries, batch_size, show_progress)


def wait_until(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def hold_first_call(batcher: QueryBatcher, enc: GatedEncoder, pool: ThreadPoolExecutor, texts: list[str]):  # type: ignore[no-untyped-def]
    """One call held in the encoder, then ``texts`` submitted and all waiting in the queue."""
    enc.gate = True
    first = pool.submit(batcher.encode, "aspirin")
    assert enc.entered.wait(10)
    futures = [pool.submit(batcher.encode, t) for t in texts]
    wait_until(lambda: batcher.pending == len(texts))
    return first, futures


def test_concurrent_queries_share_one_call_and_get_their_own_vectors():
    enc = GatedEncoder()
    with QueryBatcher(enc, max_wait_ms=50) as batcher, ThreadPoolExecutor(17) as pool:
        first, futures = hold_first_call(batcher, enc, pool, TEXTS * 2)
        enc.release.set()
        vecs = [f.result(10) for f in futures]
        np.testing.assert_array_equal(first.result(10), enc.encode_queries(["aspirin"])[0])
    # the held call had one text; the 16 that waited meanwhile went in one call
    assert [len(b) for b in enc.batches[:2]] == [1, 16]
    assert (batcher.calls, batcher.texts) == (2, 17)
    alone = KeywordEncoder(enc.vocab)
    for text, vec in zip(TEXTS * 2, vecs, strict=True):
        np.testing.assert_array_equal(vec, alone.encode_queries([text])[0])  # exact: the toy encoder is integer
    assert vecs[2].tolist() == pytest.approx([0, 0, 2**-0.5, 2**-0.5])  # "heart stroke": worked out by hand


def test_a_batch_holds_at_most_max_batch_texts():
    enc = GatedEncoder()
    with QueryBatcher(enc, max_wait_ms=50, max_batch=3) as batcher, ThreadPoolExecutor(8) as pool:
        _, futures = hold_first_call(batcher, enc, pool, TEXTS[:7])
        enc.release.set()
        for f in futures:
            f.result(10)
    assert [len(b) for b in enc.batches] == [1, 3, 3, 1]


def test_an_encoder_error_reaches_every_query_of_its_batch_and_the_next_batch_runs():
    enc = GatedEncoder(fail_on="boom")
    with QueryBatcher(enc, max_wait_ms=50) as batcher, ThreadPoolExecutor(8) as pool:
        first, futures = hold_first_call(batcher, enc, pool, ["fever", "boom", "stroke"])
        enc.release.set()
        first.result(10)
        for f in futures:
            with pytest.raises(RuntimeError, match=re.escape("cannot encode 'boom'")):
                f.result(10)
        enc.gate = False
        np.testing.assert_array_equal(batcher.encode("heart"), [0, 0, 1, 0])  # the thread lives on


def test_closing_fails_the_waiting_queries_and_later_calls():
    enc = GatedEncoder()
    batcher = QueryBatcher(enc, max_wait_ms=50)
    with ThreadPoolExecutor(8) as pool:
        first, futures = hold_first_call(batcher, enc, pool, TEXTS[:5])
        closing = pool.submit(batcher.close)
        wait_until(lambda: batcher.closed)
        for f in futures:
            with pytest.raises(BatcherClosedError, match=re.escape("the search service is shutting down")):
                f.result(10)
        enc.release.set()
        np.testing.assert_array_equal(first.result(10), [1, 0, 0, 0])  # the call under way delivers
        closing.result(10)
    assert not batcher._thread.is_alive()
    with pytest.raises(BatcherClosedError, match=re.escape("the query batcher is closed")):
        batcher.encode("aspirin")
    batcher.close()  # idempotent
    assert isinstance(BatcherClosedError("x"), RuntimeError)


def test_a_lone_query_on_an_idle_service_does_not_wait():
    with QueryBatcher(KeywordEncoder(["aspirin"]), max_wait_ms=2000) as batcher:
        for _ in range(3):
            t0 = time.perf_counter()
            batcher.encode("aspirin")
            assert time.perf_counter() - t0 < 1.0  # far below the 2 s it would wait for company


def test_under_load_a_batch_waits_for_company_at_most_max_wait_ms():
    enc = GatedEncoder()
    with QueryBatcher(enc, max_wait_ms=150) as batcher, ThreadPoolExecutor(8) as pool:
        _, futures = hold_first_call(batcher, enc, pool, TEXTS[:4])
        enc.gate = False
        enc.release.set()
        for f in futures:
            f.result(10)
        # the last call held 4 texts: the service is loaded, so the next lone text waits for company, boundedly
        t0 = time.perf_counter()
        batcher.encode("stroke")
        waited = time.perf_counter() - t0
        assert 0.14 <= waited < 1.0
        assert [len(b) for b in enc.batches] == [1, 4, 1]
        t0 = time.perf_counter()
        batcher.encode("fever")  # the last call held one text: idle again, no wait
        assert time.perf_counter() - t0 < 0.14


def test_the_batcher_refuses_settings_that_do_not_batch():
    with pytest.raises(ValueError, match=re.escape("max_wait_ms: must be > 0 (got 0)")):
        QueryBatcher(KeywordEncoder(["aspirin"]), max_wait_ms=0)
    with pytest.raises(ValueError, match=re.escape("max_batch: must be at least 1 (got 0)")):
        QueryBatcher(KeywordEncoder(["aspirin"]), max_batch=0)


@pytest.mark.integration
def test_batched_real_query_vectors_equal_single_encodings():
    """The real MiniLM query path (fp32 ONNX export where there is one): a query batched with 15 others of other
    lengths gets its own vector within 1e-6 (measured: equal to the bit on ONNX Runtime, since padding is masked)."""
    pytest.importorskip("onnxruntime")
    from es_biomed.encode.loading import load_query_encoder

    enc = load_query_encoder("all-MiniLM-L6-v2")
    queries = [
        "aspirin",
        "Ribosomopathies have a low degree of cell and tissue specific pathology.",
        "neuraminidase inhibitor influenza symptoms",
        "0-dimensional biomaterials show inductive properties.",
        "ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors.",
        "fever",
        "cytokine storm in severe COVID-19 patients treated with tocilizumab and corticosteroids",
        "vaccine efficacy",
    ] * 2
    alone = np.stack([enc.encode_queries([q])[0] for q in queries])
    with QueryBatcher(enc, max_wait_ms=20) as batcher, ThreadPoolExecutor(16) as pool:
        got = np.stack(list(pool.map(batcher.encode, queries)))
    assert batcher.calls < len(queries)  # some queries were batched
    np.testing.assert_allclose(got, alone, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------ in the service
@pytest.fixture
def serve_state(tmp_path):  # type: ignore[no-untyped-def]
    pytest.importorskip("fastapi")
    from es_biomed.backends.embedded import EmbeddedIndex
    from es_biomed.corpus import Document
    from es_biomed.search.searcher import Searcher
    from es_biomed.serve.highlight import Highlighter
    from es_biomed.serve.routes import ServeState

    enc = GatedEncoder()
    idx = EmbeddedIndex.create(tmp_path / "ix", enc.info)
    docs = [
        Document(id="d1", title="Aspirin", abstract="aspirin lowers fever", source="pubmed", date="2010"),
        Document(id="d2", abstract="aspirin and heart attacks", source="pmc", date="2015"),
        Document(id="d3", abstract="aspirin after stroke", source="pubmed", date="2020"),
    ]
    with idx.writer() as w:
        w.add(docs, enc)
    idx.reload()
    enc.batches.clear()
    return ServeState(Searcher(idx, encoder=enc), Highlighter(idx.analyze), qa_error="unit tier")


def make_client(app):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
        from starlette.testclient import TestClient
    return TestClient(app)


def test_the_service_encodes_through_its_batcher_between_startup_and_shutdown(serve_state):
    from es_biomed.serve.app import create_app

    enc = serve_state.searcher.encoder
    params = {"q": "aspirin stroke", "mode": "rerank", "k": 3}
    with make_client(create_app(state=serve_state)) as client:
        assert serve_state.batcher is None  # off by default: on a CPU it measured slower
        plain = client.get("/search", params=params).json()["hits"]
    with make_client(create_app(state=serve_state, batch_wait_ms=DEFAULT_MAX_WAIT_MS)) as client:
        batcher = serve_state.batcher
        assert batcher is not None and batcher.encoder is enc and batcher.max_wait_s == DEFAULT_MAX_WAIT_MS / 1000
        batched = client.get("/search", params=params).json()["hits"]
        assert client.get("/search", params={**params, "mode": "bm25"}).status_code == 200  # needs no vector
        one = client.post("/embed", json={"texts": ["heart"], "kind": "query"}).json()["vectors"]
        assert (batcher.calls, batcher.texts) == (2, 2)  # the rerank search and the one-text /embed
    assert serve_state.batcher is None and batcher.closed  # the lifespan closed it
    assert [h["doc_id"] for h in batched] == [h["doc_id"] for h in plain] and batched[0]["doc_id"] == "d3"
    assert [h["scores"] for h in batched] == [h["scores"] for h in plain]
    assert one == [[0.0, 0.0, 1.0, 0.0]]
    assert enc.batches.count(["aspirin stroke"]) == 2  # once per search: the vector is not encoded again


def test_a_search_caught_by_the_shutdown_is_a_503(serve_state):
    from es_biomed.serve.app import create_app

    with make_client(create_app(state=serve_state, batch_wait_ms=0)) as client:
        serve_state.batcher = QueryBatcher(serve_state.searcher.encoder)
        serve_state.batcher.close()
        r = client.get("/search", params={"q": "aspirin"})
        serve_state.batcher = None
    assert r.status_code == 503
    assert r.json()["param"] == "service" and "shutting down" in r.json()["message"]


def test_create_app_refuses_a_negative_wait(serve_state):
    from es_biomed.serve.app import create_app

    with pytest.raises(ValueError, match=re.escape("batch_wait_ms: must be >= 0 (0 disables batching), got -1")):
        create_app(state=serve_state, batch_wait_ms=-1)


def test_serve_command_offers_batching_off_by_default():
    from click.testing import CliRunner

    from es_biomed.cli.serve import serve

    opt = next(p for p in serve.params if p.name == "batch_wait_ms")
    assert opt.default == 0.0
    out = " ".join(CliRunner().invoke(serve, ["--help"]).output.split())
    assert "--batch-wait-ms" in out and "0 disables batching" in out
