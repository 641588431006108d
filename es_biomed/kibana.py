"""Import the es-biomed Kibana saved objects (data view, saved search, dashboard).

Standard library only (``urllib.request``): the import is a single multipart ``POST`` to Kibana's
``/api/saved_objects/_import``, so ``es-biomed es setup --kibana-url URL`` needs no extra dependency.
Error messages name the Kibana URL and what Kibana said, never the credentials.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from es_biomed.errors import EsBiomedError

__all__ = ["KibanaImportError", "default_ndjson_path", "import_saved_objects"]

NDJSON_NAME = "es-biomed.ndjson"
_REPO_ROOT = Path(__file__).resolve().parents[2]
_REDACTED = "[REDACTED]"


class KibanaImportError(EsBiomedError):
    """Kibana could not be reached, refused the request, or rejected some saved objects.

    Args:
        message: What went wrong; names the Kibana URL (credentials removed) and Kibana's answer.
        status: HTTP status of Kibana's answer, or None when no answer came.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self), self.status))


def default_ndjson_path() -> Path:
    """Path of the saved objects shipped with es-biomed (``docker/kibana/es-biomed.ndjson``).

    Looks in the repository this module comes from (a source checkout or an editable install), then under
    the current directory (the worker image copies ``docker/kibana`` into its working directory ``/app``).

    Returns:
        The first candidate that exists.

    Raises:
        EsBiomedError: No candidate exists (a wheel install outside the repository); pass the path explicitly.
    """
    candidates = [_REPO_ROOT / "docker" / "kibana" / NDJSON_NAME, Path.cwd() / "docker" / "kibana" / NDJSON_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise EsBiomedError(f"Kibana saved objects not found (tried {tried}); pass the .ndjson path explicitly")


def import_saved_objects(
    kibana_url: str,
    ndjson_path: str | Path,
    *,
    api_key: str | tuple[str, str] | None = None,
    username: str | None = None,
    password: str | None = None,
    ca_certs: str | Path | None = None,
    overwrite: bool = True,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Import saved objects from an ``.ndjson`` export into Kibana.

    Posts the file as ``multipart/form-data`` (field ``file``) to
    ``{kibana_url}/api/saved_objects/_import`` with the ``kbn-xsrf`` header Kibana requires.

    Args:
        kibana_url: Base URL of Kibana, e.g. ``http://localhost:5601`` (a space: ``.../s/my-space``).
            Credentials embedded in the URL (``http://user:pass@host``) are used as Basic auth when no
            other credentials are given, and are never sent in the URL or shown in messages.
        ndjson_path: The saved-objects export, one JSON object per line.
        api_key: Elasticsearch API key, as the encoded string (``base64(id:key)``) or an ``(id, key)``
            pair; sent as ``Authorization: ApiKey ...``. Takes precedence over username/password.
        username: User for Basic auth (with ``password``).
        password: Password for Basic auth.
        ca_certs: CA bundle to verify an ``https`` Kibana; the system store when None.
        overwrite: Replace objects that already exist (same type and id) instead of reporting conflicts.
        timeout: Seconds to wait for Kibana.

    Returns:
        Kibana's parsed JSON answer, e.g. ``{"success": true, "successCount": 3, "successResults": [...]}``.

    Raises:
        EsBiomedError: (:class:`KibanaImportError`) the file cannot be read, Kibana cannot be reached,
            answers with an HTTP error or a non-JSON body, or reports ``"success": false``. The message
            names the Kibana URL and the error details, never the credentials.
        ValueError: ``kibana_url`` is not an http(s) URL, or ``username`` comes without ``password`` or the
            reverse.
    """
    base_url, url_user, url_password = _split_credentials(kibana_url)
    if api_key is None and username is None and password is None and url_user is not None:
        username, password = url_user, url_password or ""
    if (username is None) != (password is None):
        raise ValueError("Kibana Basic auth needs both username and password")

    headers = {"kbn-xsrf": "true", "Accept": "application/json"}
    secrets = [s for s in (url_password, password) if s]
    if api_key is not None:
        token = _encode_api_key(api_key)
        headers["Authorization"] = f"ApiKey {token}"
        secrets += [token, *([api_key] if isinstance(api_key, str) else list(api_key[1:]))]
    elif username is not None and password is not None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
        secrets.append(token)

    def fail(message: str, status: int | None = None) -> KibanaImportError:
        return KibanaImportError(_redact(message, secrets), status)

    path = Path(ndjson_path)
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read Kibana saved objects {path}: {exc.strerror or exc}") from None

    body, content_type = _multipart_file("file", _ndjson_filename(path), payload)
    headers["Content-Type"] = content_type
    url = f"{base_url}/api/saved_objects/_import" + ("?overwrite=true" if overwrite else "")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if url.startswith("https:"):
        context = ssl.create_default_context(cafile=str(ca_certs) if ca_certs else None)
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)

    try:
        with opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc.read())
        if 300 <= exc.code < 400:
            detail += f" (redirect to {exc.headers.get('Location', '?')}: is the URL Kibana's base URL?)"
        raise fail(
            f"Kibana at {base_url} refused the saved objects import: HTTP {exc.code}: {detail}", exc.code
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise fail(f"cannot reach Kibana at {base_url}: {reason}") from None

    try:
        answer = json.loads(raw)
    except ValueError:
        raise fail(
            f"Kibana at {base_url} answered HTTP {status} with a non-JSON body: {_snippet(raw)}", status
        ) from None
    if not isinstance(answer, dict) or answer.get("success") is not True:
        summary = _summarise_errors(answer)
        raise fail(f"Kibana at {base_url} did not import every saved object from {path.name}: {summary}", status)
    return answer


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Do not follow redirects: urllib would resend the Authorization header to wherever they point."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


def _split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """Strip ``user:password@`` and any trailing slash from a URL; return it with the user and password."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Kibana URL must be http(s)://host[:port][/path], got {_strip_userinfo(url)!r}")
    user = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    netloc = parts.netloc.rpartition("@")[2]
    clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return clean, user, password


def _strip_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.rpartition("@")[2]
    host, slash, tail = rest.partition("/")
    return f"{scheme}://{host.rpartition('@')[2]}{slash}{tail}"


def _encode_api_key(api_key: str | tuple[str, str]) -> str:
    """The encoded form Kibana expects after ``ApiKey``: ``base64(id:key)``."""
    if isinstance(api_key, tuple):
        key_id, key = api_key
        return base64.b64encode(f"{key_id}:{key}".encode()).decode("ascii")
    return api_key


def _ndjson_filename(path: Path) -> str:
    """Kibana accepts only files named ``*.ndjson``."""
    return path.name if path.suffix == ".ndjson" else f"{path.stem or 'export'}.ndjson"


def _multipart_file(field: str, filename: str, payload: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one file part; returns the body and its Content-Type."""
    boundary = f"es-biomed-{uuid.uuid4().hex}"
    while boundary.encode("ascii") in payload:  # pragma: no cover - 128 random bits
        boundary = f"es-biomed-{uuid.uuid4().hex}"
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{quoted}"\r\n'
        "Content-Type: application/ndjson\r\n"
        "\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")
    return head + payload + tail, f"multipart/form-data; boundary={boundary}"


def _error_detail(raw: bytes) -> str:
    """Kibana's error answer (``{"statusCode", "error", "message"}``) as one line."""
    try:
        answer = json.loads(raw)
    except ValueError:
        return _snippet(raw) or "(empty body)"
    if isinstance(answer, dict):
        parts = [str(answer[k]) for k in ("error", "message") if answer.get(k)]
        if parts:
            return ": ".join(parts)
    return _snippet(raw)


def _summarise_errors(answer: Any) -> str:
    """One line per rejected object from an import answer with ``"success": false``."""
    if not isinstance(answer, dict):
        return f"unexpected answer {_snippet(json.dumps(answer).encode())}"
    errors = answer.get("errors") or []
    lines = [f"{answer.get('successCount', 0)} imported, {len(errors)} failed"]
    for err in errors[:20]:
        if not isinstance(err, dict):
            lines.append(str(err))
            continue
        error = err.get("error") or {}
        kind = error.get("type", "error") if isinstance(error, dict) else str(error)
        meta = err.get("meta") if isinstance(err.get("meta"), dict) else {}
        title = err.get("title") or meta.get("title") or ""
        line = f"{err.get('type', '?')}/{err.get('id', '?')} ({title}): {kind}"
        if isinstance(error, dict):
            missing = [f"{r.get('type')}/{r.get('id')}" for r in error.get("references") or [] if isinstance(r, dict)]
            if missing:
                line += f" (missing {', '.join(missing)})"
            if error.get("message"):
                line += f": {error['message']}"
        lines.append(line)
    if len(errors) > 20:
        lines.append(f"... and {len(errors) - 20} more")
    return "; ".join(lines)


def _snippet(raw: bytes, limit: int = 300) -> str:
    text = raw.decode("utf-8", errors="replace").strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def _redact(message: str, secrets: list[str]) -> str:
    """Replace every secret (password, API key, Basic token) that made it into a message."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            message = message.replace(secret, _REDACTED)
    return message
