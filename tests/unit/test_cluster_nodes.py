"""Several node URLs and the shards / replicas of the template, offline (the live tier runs a real 3-node cluster:
tests/live/test_cluster_nodes.py).

A comma-separated ``ES_URL`` / ``OPENSEARCH_URL`` is split, each entry checked and redacted, and the client gets
them all; a dead node (a closed port on 127.0.0.1) is skipped, all dead is one error naming every URL and the
command that starts a local cluster. ``setup --shards N --replicas R`` lands in the template's settings, with a
warning naming the numbers when the data nodes cannot hold the replicas.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from es_biomed.backends.cluster import ClusterConfig, check_urls, split_urls
from es_biomed.backends.dialects import get_dialect
from es_biomed.backends.es_mappings import index_template
from es_biomed.errors import ClusterError, ClusterUnavailableError, EsBiomedError

ENGINES = [("opensearch", "OPENSEARCH_URL"), ("elasticsearch", "ES_URL")]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------------- URL lists
def test_split_keeps_a_comma_inside_a_password_and_empty_entries():
    assert split_urls("http://h:9200") == ["http://h:9200"]
    assert split_urls("http://a:1,https://u:p@b:2,http://c:3") == ["http://a:1", "https://u:p@b:2", "http://c:3"]
    # a comma splits only before a scheme: 'pa,ss' is one password
    assert split_urls("http://u:pa,ss@a:1,http://b:2") == ["http://u:pa,ss@a:1", "http://b:2"]
    assert split_urls("http://a:1,,http://b:2") == ["http://a:1", "", "http://b:2"]
    assert split_urls("http://a:1,") == ["http://a:1", ""]


@pytest.mark.parametrize(("engine", "var"), ENGINES)
def test_each_url_of_a_list_is_checked_and_named_by_its_place(engine, var):
    urls = "http://a:9201,http://admin:PW@b:9202,http://c:9203"
    cfg = ClusterConfig.from_env({var: urls}, engine=engine)
    assert cfg.urls == ("http://a:9201", "http://admin:PW@b:9202", "http://c:9203") and cfg.url == urls
    bad = "http://a:9201,http://admin:PW@b:99999,http://c:9203"
    msg = f"{var} entry 2 of 3 is not a usable cluster URL: its host or port cannot be parsed"
    with pytest.raises(ClusterError, match=re.escape(msg)) as info:
        ClusterConfig.from_env({var: bad}, engine=engine)
    assert "PW" not in str(info.value) and "99999" not in str(info.value)
    with pytest.raises(ClusterError, match=re.escape(f"{var} entry 3 of 3 is not a usable cluster URL: it is empty")):
        ClusterConfig.from_env({var: "http://a:9201,http://b:9202,"}, engine=engine)
    with pytest.raises(ClusterError, match=re.escape(f"{var} entry 2 of 2 is not a usable cluster URL: it does not")):
        ClusterConfig.from_env({var: "http://a:9201,ftp://b:21"}, engine=engine)
    # a host without its scheme stays glued to the URL before it: one entry whose port cannot be parsed
    with pytest.raises(ClusterError, match=re.escape(f"{var} is not a usable cluster URL: its host or port")):
        ClusterConfig.from_env({var: "http://a:9201,b:9202"}, engine=engine)
    with pytest.raises(ClusterError, match=re.escape("url entry 2 of 2 is not a usable cluster URL")):
        ClusterConfig("http://a:1,http://b:x", engine=engine)


def test_a_single_url_keeps_its_messages():
    with pytest.raises(ClusterError, match=re.escape("ES_URL is not a usable cluster URL: it contains whitespace")):
        check_urls("http://admin:PW@localhost:9200 ", "ES_URL")
    assert check_urls("https://u:p@h:9200", "ES_URL") == ("https://u:p@h:9200",)


def test_every_password_of_a_list_is_redacted():
    cfg = ClusterConfig("http://u1:S3cr3t-one@a:9201,http://u2:pa%40ss-two@b:9202", engine="opensearch")
    shown = repr(cfg)
    assert "S3cr3t" not in shown and "pa%40ss" not in shown
    assert "url='http://***@a:9201,http://***@b:9202'" in shown
    text = cfg.redact("refused S3cr3t-one, pa@ss-two and pa%40ss-two at http://u1:S3cr3t-one@a:9201")
    assert text == "refused ***, *** and *** at http://***@a:9201"


@pytest.mark.parametrize(("engine", "_var"), ENGINES)
def test_the_client_gets_every_url_and_a_retry_per_node(engine, _var):
    pytest.importorskip("opensearchpy" if engine == "opensearch" else "elasticsearch")
    urls = ",".join(f"http://127.0.0.1:{9701 + i}" for i in range(5))
    client = get_dialect(engine).make_client(ClusterConfig(urls, engine=engine))
    if engine == "opensearch":
        hosts = [c.host for c in client.transport.connection_pool.connections]
    else:
        hosts = [f"http://{n.config.host}:{n.config.port}" for n in client.transport.node_pool.all()]
    assert sorted(hosts) == [f"http://127.0.0.1:{9701 + i}" for i in range(5)]
    if engine == "opensearch":  # threads sharing the client keep their connections (urllib3 would keep one)
        assert {c.pool.pool.maxsize for c in client.transport.connection_pool.connections} == {10}

    def retries(c: object) -> int:  # elasticsearch-py 9 keeps it on the client, opensearch-py on the transport
        return int(c.transport.max_retries if engine == "opensearch" else c._max_retries)  # type: ignore[attr-defined]

    assert retries(client) == 5  # one try per node: four dead nodes still reach the fifth
    assert retries(get_dialect(engine).make_client(ClusterConfig("http://127.0.0.1:9701", engine=engine))) == 3


# --------------------------------------------------------------------------------------------------- failover
def _serve_root(engine: str) -> tuple[ThreadingHTTPServer, str]:
    """A node that answers ``GET /`` as the engine does and ``_count`` with 7 (the rest of the backend is the live
    tier's business)."""
    if engine == "opensearch":
        root = {"version": {"number": "3.5.0", "distribution": "opensearch"}, "tagline": "The OpenSearch Project"}
    else:
        root = {"version": {"number": "9.5.3"}, "tagline": "You Know, for Search"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            payload = root if path == "/" else {"count": 7} if path.endswith("/_count") else None
            body = json.dumps(payload or {"error": "no handler", "status": 404}).encode()
            self.send_response(200 if payload else 404)
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.parametrize(("engine", "_var"), ENGINES)
def test_dead_nodes_are_skipped_and_all_dead_is_one_error_naming_every_url(engine, _var):
    pytest.importorskip("opensearchpy")
    pytest.importorskip("elasticsearch")
    from es_biomed.backends.cluster import ClusterBackend

    server, live = _serve_root(engine)
    try:
        dead = [f"http://admin:pw-secret-7@127.0.0.1:{_closed_port()}" for _ in range(2)]
        cfg = ClusterConfig(",".join([dead[0], live, dead[1]]), engine=engine, request_timeout=5)
        be = ClusterBackend.connect(cfg)
        assert [be.count() for _ in range(6)] == [7] * 6  # every request lands on the live node
    finally:
        server.shutdown()
        server.server_close()
    cfg = ClusterConfig(",".join(dead), engine=engine, request_timeout=5)
    with pytest.raises(ClusterUnavailableError) as info:
        ClusterBackend.connect(cfg)
    msg = str(info.value)
    d = get_dialect(engine)
    assert msg.startswith(f"no {d.display} node answers at any of the 2 URLs http://***@127.0.0.1:")
    assert all(u.replace("admin:pw-secret-7", "***") in msg for u in dead) and "pw-secret-7" not in msg
    assert f"`tests/engines/{engine}/cluster.sh start`" in msg and f"`make {engine}-cluster`" in msg
    assert info.value.__cause__ is None


# --------------------------------------------------------------------------------------------------- shards/replicas
@pytest.mark.parametrize("engine", ["opensearch", "elasticsearch"])
def test_shards_and_replicas_go_into_the_template_settings(engine):
    def settings(**kw: int) -> dict:
        s = index_template(384, engine=engine, **kw)["template"]["settings"]
        return s["index"] if engine == "opensearch" else s

    default = settings()
    assert default["auto_expand_replicas"] == "0-1"  # unchanged: one replica where a second node can hold it
    assert "number_of_shards" not in default and "number_of_replicas" not in default
    s = settings(shards=3, replicas=1)
    assert (s["number_of_shards"], s["number_of_replicas"]) == (3, 1) and "auto_expand_replicas" not in s
    assert {k: v for k, v in s.items() if k not in ("number_of_shards", "number_of_replicas")} == {
        k: v for k, v in default.items() if k != "auto_expand_replicas"
    }
    s = settings(shards=2)
    assert s["number_of_shards"] == 2 and s["auto_expand_replicas"] == "0-1"
    for bad in ({"shards": 0}, {"replicas": -1}, {"shards": True}, {"replicas": 1.5}):
        with pytest.raises(EsBiomedError, match=r"(shards|replicas) must be a whole number"):
            settings(**bad)  # type: ignore[arg-type]


def test_setup_sends_shards_and_replicas_and_warns_when_the_nodes_cannot_hold_them(toy_encoder, caplog):
    pytest.importorskip("elasticsearch")
    from es_biomed.backends.elasticsearch import ElasticsearchBackend, make_client
    from tests.fake_es import ALIAS, FakeES, serve

    state = FakeES(toy_encoder.dims, toy_encoder.fingerprint, data_nodes=2)
    server, url = serve(state)
    try:
        be = ElasticsearchBackend(make_client(ClusterConfig(url)), alias=ALIAS, config=ClusterConfig(url))
        result = be.setup(toy_encoder.info, analyzer="standard", shards=3, replicas=2)
        (template,) = [b for m, p, b in state.requests if m == "PUT" and p.startswith("/_index_template/")]
        s = template["template"]["settings"]
        assert (s["number_of_shards"], s["number_of_replicas"]) == (3, 2) and "auto_expand_replicas" not in s
        (warning,) = result["warnings"]
        assert warning == (
            f"2 replica(s) need 3 data nodes (a shard's primary and each replica on different nodes) but "
            f"elasticsearch at {url} has 2: the index stays yellow, with 3 of its 9 shard copies unassigned, "
            "until 1 more data node(s) join (or use --replicas 1)"
        )
        assert warning in caplog.text
        # as many copies as nodes: no warning; no --replicas: the cluster health is not even asked
        state.requests.clear()
        state.data_nodes = 3
        assert be.setup(toy_encoder.info, analyzer="standard", replicas=2)["warnings"] == [
            f"alias {ALIAS!r} already has {ALIAS}-v1: the template's shards/replicas apply to the next index "
            "version (`es-biomed es reindex`), not to the index that exists"
        ]
        state.requests.clear()
        assert be.setup(toy_encoder.info, analyzer="standard")["warnings"] == []
        assert not [p for _, p, _ in state.requests if p == "/_cluster/health"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("option", "value"), [("--shards", "0"), ("--replicas", "-1"), ("--replicas", "two")])
def test_cli_setup_refuses_bad_shards_or_replicas_before_connecting(monkeypatch, option, value):
    from click.testing import CliRunner

    from es_biomed.cli import main

    monkeypatch.setenv("OPENSEARCH_URL", f"http://127.0.0.1:{_closed_port()}")
    res = CliRunner().invoke(main, ["opensearch", "setup", option, value])
    assert res.exit_code == 2 and f"Invalid value for '{option}'" in res.output, res.output
