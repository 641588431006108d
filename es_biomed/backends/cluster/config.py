"""Connection settings of a cluster: read from the environment, checked, and never shown with their secrets.

``ES_URL`` / ``OPENSEARCH_URL`` plus ``_API_KEY``, ``_USERNAME`` / ``_PASSWORD``, ``_CA_CERTS`` and ``_ALIAS``.
The URL may list several nodes of one cluster, comma-separated (``http://h1:9200,http://h2:9200``): each is checked,
the client gets them all and fails over to the live ones. Credentials never appear in logs, reprs or error
messages: :func:`redact` hides a URL's whole user-info and any secret given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from es_biomed.backends.dialects import get_dialect
from es_biomed.backends.es_mappings import (
    ALIAS,
)
from es_biomed.errors import (
    ClusterError,
)

__all__ = ["CLUSTER_ENGINES", "ClusterConfig", "check_url", "check_urls", "redact", "split_urls", "url_password"]


# A URL's user-info is everything between ``scheme://`` and the LAST ``@`` of the authority (the authority ends at
# ``/``, ``?``, ``#``): URL parsers (urllib's ``rpartition("@")``, urllib3) read ``http://u:p@ss@host`` as user ``u``,
# password ``p@ss``, host ``host``, so the redaction must not stop at the first ``@``.
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with the user-info of every URL (up to the last ``@`` before the host) and each secret replaced by
    ``***``.

    Example:
        >>> redact("at http://admin:pa@S3cr3t@127.0.0.1:9799/x?a=b@c")
        'at http://***@127.0.0.1:9799/x?a=b@c'
    """
    text = _USERINFO.sub(r"\1***@", text)
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def check_url(url: object, name: str = "url") -> None:
    """Refuse a cluster URL the clients cannot use, with a message naming ``name`` (the environment variable it came
    from) and never showing the value, which may hold a password.

    Raises:
        ClusterError: not a string, whitespace or control characters, a scheme other than ``http`` / ``https``, no
            host, or a port that is not a number from 0 to 65535.
    """
    why = None
    if not isinstance(url, str):
        why = f"it is a {type(url).__name__}, not a string"
    elif any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        why = "it contains whitespace or control characters"
    else:
        try:
            parts = urlsplit(url)
            if parts.scheme.lower() not in ("http", "https"):
                why = "it does not start with http:// or https://"
            elif not parts.hostname:
                why = "it names no host"
            else:
                parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
        except ValueError:
            why = why or "its host or port cannot be parsed (the port must be a number from 0 to 65535)"
    if why:
        raise ClusterError(
            f"{name} is not a usable cluster URL: {why}. Expected e.g. http://localhost:9200 or "
            "https://user:password@host:9200, several nodes as http://h1:9200,http://h2:9200 (the value is not "
            "shown: it may hold a password)"
        )


def split_urls(value: str) -> list[str]:
    """The node URLs of a comma-separated list, as written (nothing stripped).

    A comma splits only where a URL with its own scheme follows, so a password that holds a comma stays whole.

    Example:
        >>> split_urls("http://h1:9200,https://u:p,w@h2:9200")
        ['http://h1:9200', 'https://u:p,w@h2:9200']
        >>> split_urls("http://h1:9200,,http://h2:9200")
        ['http://h1:9200', '', 'http://h2:9200']
    """
    out: list[str] = []
    for piece in value.split(","):
        if out and piece and not _SCHEME.match(piece):
            out[-1] += "," + piece
        else:
            out.append(piece)
    return out


def check_urls(value: object, name: str = "url") -> tuple[str, ...]:
    """The URLs of ``value`` (one URL, or several comma-separated), each checked as :func:`check_url` does.

    A single URL gets exactly the messages of :func:`check_url`; in a list, the entry at fault is named
    (``OPENSEARCH_URL entry 2 of 3 is not a usable cluster URL: ...``), never its value.

    Raises:
        ClusterError: an entry is empty or unusable.
    """
    if not isinstance(value, str):
        check_url(value, name)
    urls = split_urls(str(value))
    for i, url in enumerate(urls, 1):
        where = name if len(urls) == 1 else f"{name} entry {i} of {len(urls)}"
        if not url:
            raise ClusterError(
                f"{where} is not a usable cluster URL: it is empty (two commas in a row, or a comma at an end). "
                "Expected comma-separated URLs, e.g. http://h1:9200,http://h2:9200"
            )
        check_url(url, where)
    return tuple(urls)


def url_password(url: str) -> str | None:
    """The password in ``url``'s user-info (after the first ``:``, up to the last ``@``), or None."""
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


@dataclass(frozen=True)
class ClusterConfig:
    """Connection settings for one engine. ``repr`` never shows the API key or the password.

    ``url`` may name several nodes of the cluster, comma-separated; :attr:`urls` lists them.

    Example:
        >>> ClusterConfig("https://u:p@es:9200", password="p")
        ClusterConfig(engine='elasticsearch', url='https://***@es:9200', username=None, ca_certs=None, alias='es-biomed', request_timeout=30.0)
    """

    url: str
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    alias: str = ALIAS
    request_timeout: float = 30.0
    engine: str = "elasticsearch"

    def __post_init__(self) -> None:
        check_urls(self.url)

    @property
    def urls(self) -> tuple[str, ...]:
        """The node URLs: :attr:`url` split at its commas (one element for a single URL)."""
        return tuple(split_urls(self.url))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(engine={self.engine!r}, url={redact(self.url)!r}, username={self.username!r}, "
            f"ca_certs={self.ca_certs!r}, alias={self.alias!r}, request_timeout={self.request_timeout!r})"
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, engine: str = "elasticsearch", **overrides: Any
    ) -> ClusterConfig:
        """Read ``<P>_URL``, ``<P>_API_KEY``, ``<P>_USERNAME``, ``<P>_PASSWORD``, ``<P>_CA_CERTS``, ``<P>_ALIAS``
        with ``P`` = ``ES`` (Elasticsearch) or ``OPENSEARCH``.

        Raises:
            ClusterError: no URL is configured, or it is not a usable ``http(s)://`` URL (the message names the
                variable, never its value).
        """
        env = os.environ if environ is None else environ
        dialect = get_dialect(engine)
        p = dialect.env_prefix
        values: dict[str, Any] = {
            "url": env.get(f"{p}_URL"),
            "api_key": env.get(f"{p}_API_KEY") or None,
            "username": env.get(f"{p}_USERNAME") or None,
            "password": env.get(f"{p}_PASSWORD") or None,
            "ca_certs": env.get(f"{p}_CA_CERTS") or None,
            "alias": env.get(f"{p}_ALIAS") or ALIAS,
            "engine": dialect.name,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values["url"]:
            raise ClusterError(
                f"no {dialect.display} URL: set {p}_URL (and {p}_USERNAME/{p}_PASSWORD or {p}_API_KEY if the cluster "
                f"needs them); `{dialect.start_command}` starts a local node and prints its URL"
            )
        check_urls(values["url"], "url" if overrides.get("url") is not None else f"{p}_URL")
        return cls(**values)

    def redact(self, text: str) -> str:
        """``text`` without the URL user-info, the API key, the password, nor the password inside any of
        :attr:`urls`."""
        in_urls = [p for p in map(url_password, self.urls) if p]
        return redact(text, self.api_key, self.password, *in_urls, *map(unquote, in_urls))


#: CLI / Searcher backend names of the cluster engines.
CLUSTER_ENGINES = {"es": "elasticsearch", "opensearch": "opensearch", "elasticsearch": "elasticsearch"}
