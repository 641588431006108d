"""Dialects and capabilities, offline: what decides fallbacks and which live tests run."""

from __future__ import annotations

import re

import pytest

from es_biomed.backends.cluster import ClusterConfig
from es_biomed.backends.dialects import Capabilities, ElasticsearchDialect, OpenSearchDialect, get_dialect
from es_biomed.errors import ClusterError


def test_rrf_retriever_needs_the_module_and_an_enterprise_or_trial_license():
    mods = frozenset({"x-pack-core", "x-pack-rank-rrf", "lang-painless"})
    assert Capabilities("elasticsearch", "9.1.3", mods, "trial").rrf_retriever
    assert Capabilities("elasticsearch", "9.1.3", mods, "enterprise").rrf_retriever
    assert not Capabilities("elasticsearch", "9.1.3", mods, "basic").rrf_retriever  # compose's default
    assert not Capabilities("elasticsearch", "9.5.3", frozenset({"transport-netty4"}), None).rrf_retriever
    assert not Capabilities("opensearch", "3.5.0", mods | {"opensearch-knn"}, None).rrf_retriever


def test_capabilities_from_module_names():
    node = Capabilities("elasticsearch", "9.5.3", frozenset({"transport-netty4"}))
    assert not (node.scripts or node.search_templates or node.reindex or node.english_analyzer) and node.knn
    os_mods = {"lang-painless", "lang-mustache", "reindex", "ingest-common", "analysis-common", "opensearch-knn"}
    full = Capabilities("opensearch", "3.5.0", frozenset(os_mods))
    assert full.scripts and full.search_templates and full.reindex and full.ingest_pipelines and full.knn
    assert not Capabilities("opensearch", "3.5.0", frozenset({"lang-painless"})).knn
    assert full.to_dict()["modules"] == sorted(os_mods)


def test_config_reads_the_engine_prefix_and_never_shows_secrets():
    env = {"OPENSEARCH_URL": "https://admin:pw-9@os:9200", "OPENSEARCH_PASSWORD": "pw-9", "ES_URL": "http://es:9200"}
    cfg = ClusterConfig.from_env(env, engine="opensearch")
    assert cfg.engine == "opensearch" and cfg.url.startswith("https://admin")
    assert "pw-9" not in repr(cfg) and cfg.redact("at https://admin:pw-9@os:9200 pw-9") == "at https://***@os:9200 ***"
    assert ClusterConfig.from_env(env).url == "http://es:9200"
    with pytest.raises(ClusterError, match=re.escape("no OpenSearch URL: set OPENSEARCH_URL")):
        ClusterConfig.from_env({}, engine="opensearch")
    with pytest.raises(ClusterError, match="unknown engine 'solr'"):
        get_dialect("solr")


def test_redact_hides_the_whole_user_info_up_to_the_last_at():
    """A password may hold '@': the user-info runs to the last '@' of the authority, as URL parsers read it."""
    from es_biomed.backends.cluster import redact

    assert redact("http://admin:pa@S3cr3t@127.0.0.1:9799") == "http://***@127.0.0.1:9799"
    assert (
        redact("at https://u:p@@h:9200/x?mail=a@b.c and mail a@b.c")
        == "at https://***@h:9200/x?mail=a@b.c and mail a@b.c"
    )
    assert redact("ht!tp://admin:PW@@") == "ht!tp://***@"
    assert redact("http://h:9200 http://u:x@y@h2") == "http://h:9200 http://***@h2"


@pytest.mark.parametrize("engine", ["opensearch", "elasticsearch"])
def test_config_with_an_at_in_the_password_never_shows_it(engine):
    var = "OPENSEARCH_URL" if engine == "opensearch" else "ES_URL"
    cfg = ClusterConfig.from_env({var: "http://admin:pa@S3cr3t@127.0.0.1:9799"}, engine=engine)
    assert "S3cr3t" not in repr(cfg) and "url='http://***@127.0.0.1:9799'" in repr(cfg)
    # the password inside the URL is a secret too, wherever an error message echoes it
    assert cfg.redact("refused pa@S3cr3t at http://admin:pa@S3cr3t@127.0.0.1:9799") == (
        "refused *** at http://***@127.0.0.1:9799"
    )


@pytest.mark.parametrize("engine", ["opensearch", "elasticsearch"])
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ht!tp://admin:PW@@", "it does not start with http:// or https://"),
        ("http://admin:PW@@", "it names no host"),
        ("admin:PW@localhost:9200", "it does not start with http:// or https://"),
        ("http://admin:PW@localhost:PWport", "its host or port cannot be parsed"),
        ("http://admin:PW@localhost:99999", "its host or port cannot be parsed"),
        ("http://admin:PW@[::1", "its host or port cannot be parsed"),
        ("http://admin:PW@localhost:9200 ", "it contains whitespace or control characters"),
    ],
)
def test_an_unusable_url_is_a_clear_error_naming_the_variable_not_the_password(engine, url, why):
    var = "OPENSEARCH_URL" if engine == "opensearch" else "ES_URL"
    with pytest.raises(ClusterError, match=re.escape(f"{var} is not a usable cluster URL: {why}")) as info:
        ClusterConfig.from_env({var: url}, engine=engine)
    assert "PW" not in str(info.value) and info.value.__cause__ is None and info.value.__context__ is None
    with pytest.raises(ClusterError, match=re.escape(f"url is not a usable cluster URL: {why}")) as info:
        ClusterConfig(url, engine=engine)
    assert "PW" not in str(info.value)


def test_cli_status_with_an_unusable_url_names_the_variable(monkeypatch):
    from click.testing import CliRunner

    from es_biomed.cli import main

    monkeypatch.setenv("OPENSEARCH_URL", "ht!tp://admin:PW@@")
    res = CliRunner().invoke(main, ["opensearch", "status"])
    assert res.exit_code == 1 and not isinstance(res.exception, TypeError), res.output
    assert "Error: OPENSEARCH_URL is not a usable cluster URL" in res.output and "PW" not in res.output


def test_each_dialect_refuses_the_other_engine():
    os_info = {"version": {"number": "3.5.0", "distribution": "opensearch"}, "tagline": "The OpenSearch Project"}
    es_info = {"version": {"number": "9.5.3"}, "tagline": "You Know, for Search"}
    assert OpenSearchDialect().check_server(os_info, "http://x") == "3.5.0"
    with pytest.raises(ClusterError, match=re.escape("http://x is Elasticsearch 9.5.3, not OpenSearch")):
        OpenSearchDialect().check_server(es_info, "http://x")
    with pytest.raises(ClusterError, match=re.escape("http://x is OpenSearch 3.5.0, not Elasticsearch")):
        ElasticsearchDialect().check_server(os_info, "http://x")
    with pytest.raises(ClusterError, match="OpenSearch 1.3.0; es-biomed needs OpenSearch 2.x or 3.x"):
        OpenSearchDialect().check_server({"version": {"number": "1.3.0", "distribution": "opensearch"}}, "u")


def test_elasticsearch_major_must_match_the_client():
    pytest.importorskip("elasticsearch")
    with pytest.raises(
        ClusterError, match=re.escape("install elasticsearch>=8,<9 (for Elasticsearch 8: elasticsearch>=8.18,<9)")
    ):
        ElasticsearchDialect().check_server({"version": {"number": "8.15.0"}}, "http://x")


def test_vector_mappings_per_dialect():
    es = ElasticsearchDialect().vector_mapping(384, None)
    assert es == {
        "type": "dense_vector",
        "dims": 384,
        "similarity": "cosine",
        "index": True,
        "index_options": {"type": "int8_hnsw", "m": 16, "ef_construction": 100},
    }
    os_ = OpenSearchDialect().vector_mapping(768, {"type": "hnsw", "m": 32, "ef_construction": 200})
    assert os_ == {
        "type": "knn_vector",
        "dimension": 768,
        "method": {
            "name": "hnsw",
            "space_type": "cosinesimil",
            "engine": "lucene",
            "parameters": {"m": 32, "ef_construction": 200},
        },
    }


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("backend", "prefix", "start"),
    [("opensearch", "OPENSEARCH", "make opensearch"), ("es", "ES", "make elasticsearch")],
)
def test_cli_names_the_url_and_the_start_command_when_no_engine_runs(monkeypatch, backend, prefix, start):
    pytest.importorskip("opensearchpy")
    pytest.importorskip("elasticsearch")
    from click.testing import CliRunner

    from es_biomed.cli import main

    url = f"http://elastic:pw-secret-7@127.0.0.1:{_closed_port()}"
    monkeypatch.setenv(f"{prefix}_URL", url)
    res = CliRunner().invoke(main, ["search", "aspirin", "--backend", backend, "--no-rerank"])
    assert res.exit_code == 1, res.output
    assert "answers at http://***@127.0.0.1:" in res.output and f"`{start}`" in res.output
    assert "Traceback" not in res.output and "pw-secret-7" not in res.output


@pytest.mark.parametrize("engine", ["opensearch", "elasticsearch"])
def test_refused_credentials_are_named_but_never_printed(engine):
    """A server that answers 401, as a secured cluster does to a wrong password (no secured node runs here)."""
    pytest.importorskip("opensearchpy")
    pytest.importorskip("elasticsearch")
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from es_biomed.backends.cluster import ClusterBackend
    from es_biomed.errors import ClusterAuthError

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b'{"error":{"type":"security_exception","reason":"unable to authenticate user"},"status":401}'
            self.send_response(401)
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = ClusterConfig(
            f"http://127.0.0.1:{server.server_address[1]}", username="admin", password="wr0ng-pass", engine=engine
        )
        with pytest.raises(ClusterAuthError) as info:
            ClusterBackend.connect(cfg)
        assert "refused the credentials (HTTP 401)" in str(info.value) and "wr0ng-pass" not in str(info.value)
    finally:
        server.shutdown()


def test_bulk_interrupted_error_pickles_with_its_report():
    """It may cross a Celery boundary: the report of what was written must survive."""
    import pickle

    from es_biomed.backends.cluster import BulkInterruptedError, BulkReport
    from es_biomed.errors import ClusterUnavailableError

    err = BulkInterruptedError("went away after 2 documents", BulkReport(ok=2, written_ids=["a", "b"]))
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, ClusterUnavailableError) and str(back) == "went away after 2 documents"
    assert back.report.ok == 2 and back.report.written_ids == ["a", "b"]
