"""A local stand-in for the few Elasticsearch 9 REST calls es-biomed makes, for offline request validation and
for fault injection a real node cannot be asked for (a cluster answering 503 to bulk requests).

It answers like Elasticsearch (with the ``X-Elastic-Product`` header the official client requires) and records
every request, so tests can validate each body against the official API specification. Used by the backend's
unit tests and by the Celery worker tests (a worker process talks to it over HTTP like to a cluster).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

ALIAS = "es-biomed"


class FakeES:
    """State of the fake cluster: one index behind the alias, and scripted bulk answers."""

    def __init__(self, dims: int, fingerprint: str, unavailable_bulks: int = 0, data_nodes: int = 1) -> None:
        self.lock = threading.Lock()
        #: What ``GET _cluster/health`` reports as the number of (data) nodes.
        self.data_nodes = data_nodes
        #: The first ``unavailable_bulks`` bulk requests are answered 503 as a whole (an overloaded cluster).
        self.unavailable_bulks = unavailable_bulks
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
        if path == "/_cluster/health":
            n = self.data_nodes
            return 200, {"cluster_name": "fake", "status": "green", "number_of_nodes": n, "number_of_data_nodes": n}
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
            if self.unavailable_bulks > 0:
                self.unavailable_bulks -= 1
                self.bulk_calls += 1
                return 503, {"error": {"type": "unavailable_shards_exception", "reason": "overloaded"}, "status": 503}
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


def serve(state: FakeES) -> tuple[ThreadingHTTPServer, str]:
    """Start an HTTP server for ``state`` in a daemon thread; returns ``(server, url)``."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if "ndjson" in (self.headers.get("Content-Type") or "") or self.path.split("?")[0] == "/_bulk":
                body: object = [json.loads(x) for x in raw.splitlines() if x.strip()]
            else:
                body = json.loads(raw) if raw else None
            with state.lock:
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
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
