"""Kibana saved-objects import against a local fake Kibana, and the shipped docker/kibana/es-biomed.ndjson."""

from __future__ import annotations

import base64
import email.message
import email.parser
import email.policy
import json
import pickle
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from es_biomed.errors import EsBiomedError
from es_biomed.kibana import KibanaImportError, default_ndjson_path, import_saved_objects
from tests.conftest import REPO

NDJSON = REPO / "docker" / "kibana" / "es-biomed.ndjson"
PASSWORD = "pw-Sup3r-s3cret"
API_KEY = "QUtleUlkOmFQaUtleVNlY3JldA=="  # base64("AKeyId:aPiKeySecret")
SUCCESS = {"success": True, "successCount": 3, "successResults": []}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeKibana:
    """Records each request and answers with ``status`` / ``answer`` (a dict, or raw bytes)."""

    url: str = ""
    status: int = 200
    answer: dict | bytes = field(default_factory=lambda: dict(SUCCESS))
    extra_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def respond(self, status: int, answer: dict | bytes, **headers: str) -> None:
        self.status, self.answer, self.extra_headers = status, answer, headers


@pytest.fixture
def kibana(monkeypatch) -> Iterator[FakeKibana]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    fake = FakeKibana()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            fake.requests.append(Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            raw = fake.answer if isinstance(fake.answer, bytes) else json.dumps(fake.answer).encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            for name, value in fake.extra_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def file_part(request: Recorded) -> email.message.EmailMessage:
    """The single multipart part of a recorded import request."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    assert message.is_multipart()
    parts = list(message.iter_parts())
    assert len(parts) == 1
    return parts[0]


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"secret leaked into: {text}"


# --- import_saved_objects -----------------------------------------------------------------------------------


def test_basic_auth_import_posts_multipart_ndjson(kibana):
    answer = import_saved_objects(kibana.url, NDJSON, username="elastic", password=PASSWORD)
    assert answer == SUCCESS

    [req] = kibana.requests
    assert req.method == "POST"
    assert req.path == "/api/saved_objects/_import?overwrite=true"
    assert req.headers["kbn-xsrf"] == "true"
    assert req.headers["authorization"] == "Basic " + base64.b64encode(f"elastic:{PASSWORD}".encode()).decode()
    assert req.headers["content-type"].startswith("multipart/form-data; boundary=")

    part = file_part(req)
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename() == "es-biomed.ndjson"
    assert part.get_content_type() == "application/ndjson"
    assert part.get_payload(decode=True) == NDJSON.read_bytes()
    # The exact bytes, not a re-encoded copy: the file sits verbatim between the part headers and the boundary.
    boundary = req.headers["content-type"].split("boundary=", 1)[1]
    assert req.body.endswith(b"\r\n\r\n" + NDJSON.read_bytes() + f"\r\n--{boundary}--\r\n".encode())


def test_api_key_auth_header(kibana):
    import_saved_objects(kibana.url + "/", NDJSON, api_key=API_KEY)
    [req] = kibana.requests
    assert req.headers["authorization"] == f"ApiKey {API_KEY}"
    assert req.path == "/api/saved_objects/_import?overwrite=true"  # trailing slash of the base URL dropped


def test_api_key_pair_is_encoded_and_wins_over_basic(kibana):
    import_saved_objects(kibana.url, NDJSON, api_key=("AKeyId", "aPiKeySecret"), username="u", password=PASSWORD)
    [req] = kibana.requests
    assert req.headers["authorization"] == f"ApiKey {API_KEY}"


def test_no_credentials_sends_no_authorization(kibana):
    import_saved_objects(kibana.url, NDJSON)
    [req] = kibana.requests
    assert "authorization" not in req.headers


def test_overwrite_false_omits_the_query(kibana):
    import_saved_objects(kibana.url, NDJSON, overwrite=False)
    [req] = kibana.requests
    assert req.path == "/api/saved_objects/_import"


def test_space_path_in_base_url(kibana):
    import_saved_objects(kibana.url + "/s/biomed", NDJSON)
    assert kibana.requests[0].path == "/s/biomed/api/saved_objects/_import?overwrite=true"


def test_non_ndjson_file_name_is_sent_as_ndjson(kibana, tmp_path):
    export = tmp_path / "export.json"
    export.write_bytes(NDJSON.read_bytes())
    import_saved_objects(kibana.url, export)
    assert file_part(kibana.requests[0]).get_filename() == "export.ndjson"


def test_credentials_in_url_become_basic_auth_and_stay_out_of_the_path(kibana):
    host = kibana.url.removeprefix("http://")
    kibana.respond(
        401, {"statusCode": 401, "error": "Unauthorized", "message": "[security_exception] unable to authenticate"}
    )
    with pytest.raises(EsBiomedError) as info:
        import_saved_objects(f"http://elastic:{PASSWORD}@{host}", NDJSON)
    [req] = kibana.requests
    assert req.headers["authorization"] == "Basic " + base64.b64encode(f"elastic:{PASSWORD}".encode()).decode()
    assert req.path == "/api/saved_objects/_import?overwrite=true"
    message = str(info.value)
    assert kibana.url in message and "HTTP 401" in message
    assert_no_secret(message, PASSWORD, req.headers["authorization"].split()[1])


def test_http_error_raises_without_credentials(kibana):
    kibana.respond(
        401, {"statusCode": 401, "error": "Unauthorized", "message": "[security_exception] unable to authenticate"}
    )
    with pytest.raises(EsBiomedError) as info:
        import_saved_objects(kibana.url, NDJSON, username="elastic", password=PASSWORD)
    err = info.value
    assert isinstance(err, KibanaImportError) and err.status == 401
    message = str(err)
    assert kibana.url in message
    assert "HTTP 401" in message and "unable to authenticate" in message
    basic = base64.b64encode(f"elastic:{PASSWORD}".encode()).decode()
    assert_no_secret(message, PASSWORD, basic)
    assert_no_secret(repr(err), PASSWORD, basic)


def test_http_error_with_api_key_raises_without_the_key(kibana):
    kibana.respond(400, {"statusCode": 400, "error": "Bad Request", "message": "Invalid file extension .txt"})
    with pytest.raises(EsBiomedError) as info:
        import_saved_objects(kibana.url, NDJSON, api_key=("AKeyId", "aPiKeySecret"))
    message = str(info.value)
    assert "HTTP 400" in message and "Invalid file extension" in message and kibana.url in message
    assert_no_secret(message, API_KEY, "aPiKeySecret")


def test_secret_echoed_by_the_server_is_redacted(kibana):
    kibana.respond(403, {"statusCode": 403, "error": "Forbidden", "message": f"user with password {PASSWORD} denied"})
    with pytest.raises(EsBiomedError) as info:
        import_saved_objects(kibana.url, NDJSON, username="elastic", password=PASSWORD)
    assert_no_secret(str(info.value), PASSWORD)
    assert "[REDACTED]" in str(info.value)


def test_success_false_lists_the_failed_objects(kibana):
    kibana.respond(
        200,
        {
            "success": False,
            "successCount": 1,
            "errors": [
                {
                    "id": "es-biomed-corpus",
                    "type": "search",
                    "meta": {"title": "es-biomed: corpus"},
                    "error": {"type": "missing_references", "references": [{"type": "index-pattern", "id": "nope"}]},
                },
                {"id": "es-biomed-corpus-dashboard", "type": "dashboard", "title": "x", "error": {"type": "conflict"}},
            ],
        },
    )
    with pytest.raises(EsBiomedError) as info:
        import_saved_objects(kibana.url, NDJSON, api_key=API_KEY)
    message = str(info.value)
    assert kibana.url in message
    assert "search/es-biomed-corpus" in message and "missing_references" in message and "index-pattern/nope" in message
    assert "dashboard/es-biomed-corpus-dashboard" in message and "conflict" in message
    assert_no_secret(message, API_KEY)


def test_non_json_answer_raises(kibana):
    kibana.respond(200, b"<html>not kibana</html>")
    with pytest.raises(EsBiomedError, match="non-JSON"):
        import_saved_objects(kibana.url, NDJSON)


def test_redirect_is_not_followed(kibana):
    kibana.respond(302, b"", Location="http://elsewhere.invalid/login")
    with pytest.raises(EsBiomedError, match="HTTP 302") as info:
        import_saved_objects(kibana.url, NDJSON, username="elastic", password=PASSWORD)
    assert len(kibana.requests) == 1
    assert_no_secret(str(info.value), PASSWORD)


def test_unreachable_kibana_raises_without_credentials(kibana):
    # A port that was just free: bind, note it, close.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://elastic:{PASSWORD}@127.0.0.1:{port}"
    with pytest.raises(EsBiomedError) as info:
        import_saved_objects(url, NDJSON, timeout=5)
    message = str(info.value)
    assert f"http://127.0.0.1:{port}" in message and "cannot reach Kibana" in message
    assert_no_secret(message, PASSWORD)


def test_missing_file_raises(tmp_path, kibana):
    with pytest.raises(EsBiomedError, match="cannot read"):
        import_saved_objects(kibana.url, tmp_path / "nope.ndjson", username="elastic", password=PASSWORD)
    assert kibana.requests == []


def test_argument_errors():
    with pytest.raises(ValueError, match="username and password"):
        import_saved_objects("http://127.0.0.1:1", NDJSON, username="elastic")
    with pytest.raises(ValueError, match="http") as info:
        import_saved_objects(f"ftp://elastic:{PASSWORD}@host", NDJSON)
    assert_no_secret(str(info.value), PASSWORD)


def test_error_survives_pickle():
    err = KibanaImportError("Kibana at http://k:5601 refused", 401)
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, KibanaImportError) and str(back) == str(err) and back.status == 401


def test_default_ndjson_path_is_the_repo_file():
    assert default_ndjson_path() == NDJSON


# --- docker/kibana/es-biomed.ndjson -------------------------------------------------------------------------


def load_objects(path: Path = NDJSON) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = text.splitlines()
    assert all(line.strip() for line in lines), "blank line in the export"
    return [json.loads(line) for line in lines]


def test_ndjson_lines_parse_and_ids_are_unique():
    objects = load_objects()
    for obj in objects:
        assert isinstance(obj, dict)
        assert {"id", "type", "attributes", "references"} <= obj.keys()
    keys = [(obj["type"], obj["id"]) for obj in objects]
    assert len(keys) == len(set(keys))
    ids = [obj["id"] for obj in objects]
    assert len(ids) == len(set(ids))


def test_ndjson_references_resolve():
    objects = load_objects()
    present = {(obj["type"], obj["id"]) for obj in objects} | {("index-pattern", "es-biomed")}
    for obj in objects:
        names = [ref["name"] for ref in obj["references"]]
        assert len(names) == len(set(names)), obj["id"]
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in present, f"{obj['type']}/{obj['id']} -> {ref}"


def test_ndjson_objects_have_the_expected_shape():
    by_type = {obj["type"]: obj for obj in load_objects()}
    assert set(by_type) == {"index-pattern", "search", "dashboard"}

    view = by_type["index-pattern"]
    assert view["id"] == "es-biomed"
    # no time field: the SciFact sample has no dates, and a time field would hide every dateless document
    assert view["attributes"]["title"] == "es-biomed" and "timeFieldName" not in view["attributes"]
    for key in ("fields", "sourceFilters", "fieldFormatMap", "fieldAttrs", "runtimeFieldMap"):
        json.loads(view["attributes"][key])  # string-encoded JSON, as Kibana exports it

    search = by_type["search"]
    assert search["attributes"]["title"] == "es-biomed: corpus"
    assert search["attributes"]["columns"] == ["title", "source", "year", "doi"]
    source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    refs = {ref["name"]: ref for ref in search["references"]}
    assert refs[source["indexRefName"]] == {
        "id": "es-biomed",
        "name": "kibanaSavedObjectMeta.searchSourceJSON.index",
        "type": "index-pattern",
    }

    dashboard = by_type["dashboard"]
    assert dashboard["attributes"]["title"] == "es-biomed corpus"
    json.loads(dashboard["attributes"]["optionsJSON"])
    json.loads(dashboard["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    refs = {ref["name"]: ref for ref in dashboard["references"]}
    assert panels and all(p["gridData"]["i"] == p["panelIndex"] for p in panels)
    embedded = [refs[f"{p['panelIndex']}:{p['panelRefName']}"] for p in panels]
    assert {(r["type"], r["id"]) for r in embedded} == {("search", search["id"])}
