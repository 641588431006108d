"""The cluster backend: the embedded engine's interface over Elasticsearch or OpenSearch, reranking in the cluster.

One class runs every operation for both engines; a :class:`~es_biomed.backends.dialects.Dialect` supplies the
client, the mappings, the compiler dialect and the error classes (the SQLAlchemy dialect pattern).

* Indices are versioned (``es-biomed-v1``, ``-v2``...) behind the alias ``es-biomed``; a reindex builds the next
  version as a server-side task and swaps the alias atomically (zero downtime).
* Writes go through the client's ``helpers.streaming_bulk`` with deterministic ``_id`` (the document id), 429
  retries with capped exponential backoff, and a per-document report of partial failures. A cluster that goes
  away mid-bulk raises :class:`BulkInterruptedError` carrying what was written; a re-run overwrites, never
  duplicates.
* Searches send the body compiled from the same :class:`~es_biomed.query.SearchPlan` the embedded engine runs.
  Where the cluster lacks a feature (the ``rrf`` retriever without an Enterprise or trial license, hybrid search
  on OpenSearch), the same RRF arithmetic runs client-side over two in-cluster searches, with a logged notice.
* Connection settings come from ``ES_URL`` / ``OPENSEARCH_URL`` (+ ``_API_KEY``, ``_USERNAME`` / ``_PASSWORD``,
  ``_CA_CERTS``). Credentials never appear in logs, reprs or error messages.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from es_biomed.backends.dialects import Capabilities, Dialect, get_dialect
from es_biomed.backends.es_mappings import (
    ALIAS,
    PIPELINE_ID,
    SEARCH_TEMPLATE_ID,
    TEMPLATE_NAME,
    ce_text_painless,
    index_template,
    ingest_pipeline,
    search_template_source,
    versioned_index,
)
from es_biomed.corpus.passages import PassageConfig, embed_passages
from es_biomed.corpus.types import Document
from es_biomed.encode.base import Encoder, EncoderInfo
from es_biomed.errors import (
    ClusterAuthError,
    ClusterError,
    ClusterUnavailableError,
    EncoderMismatchError,
    PlanError,
)
from es_biomed.query.cross_stage import document_text
from es_biomed.query.es_compile import CE_TEXT_FIELD, compile_search
from es_biomed.query.plan import SearchPlan, apply_rescore, reciprocal_rank_fusion
from es_biomed.query.results import Hit, SearchResults

__all__ = [
    "CLUSTER_ENGINES",
    "connect_cluster",
    "ClusterConfig",
    "BulkReport",
    "BulkInterruptedError",
    "ClusterBackend",
    "document_source",
    "bulk_actions",
    "reindex_body",
    "redact",
    "check_url",
]

logger = logging.getLogger(__name__)


# A URL's user-info is everything between ``scheme://`` and the LAST ``@`` of the authority (the authority ends at
# ``/``, ``?``, ``#``): URL parsers (urllib's ``rpartition("@")``, urllib3) read ``http://u:p@ss@host`` as user ``u``,
# password ``p@ss``, host ``host``, so the redaction must not stop at the first ``@``.
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@")


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
            "https://user:password@host:9200 (the value is not shown: it may hold a password)"
        )


def url_password(url: str) -> str | None:
    """The password in ``url``'s user-info (after the first ``:``, up to the last ``@``), or None."""
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


@dataclass(frozen=True)
class ClusterConfig:
    """Connection settings for one engine. ``repr`` never shows the API key or the password.

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
        check_url(self.url)

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
        check_url(values["url"], "url" if overrides.get("url") is not None else f"{p}_URL")
        return cls(**values)

    def redact(self, text: str) -> str:
        """``text`` without the URL user-info, the API key, the password, nor the password inside :attr:`url`."""
        in_url = url_password(self.url)
        return redact(text, self.api_key, self.password, in_url, unquote(in_url) if in_url else None)


def document_source(
    doc: Document, passage_vectors: np.ndarray | None, passage_texts: Sequence[str] = (), ce_text: bool = False
) -> dict[str, Any]:
    """The ``_source`` of a document: fields, ``embedding`` (passage 0) and nested ``passages``; with ``ce_text``
    also ``ce_text``, the ``title + ". " + abstract`` that ``rerank_ce``'s cross-encoder reads in Elasticsearch
    (:func:`~es_biomed.query.cross_stage.document_text`, the text the embedded engine's stage scores)."""
    src: dict[str, Any] = {k: v for k, v in doc.to_json().items() if v not in ("", [])}
    if doc.year is not None:
        src["year"] = doc.year
    if ce_text and (doc.title or doc.abstract):
        src[CE_TEXT_FIELD] = document_text(src)
    if passage_vectors is not None and len(passage_vectors):
        vecs = [[float(x) for x in row] for row in np.asarray(passage_vectors, dtype=np.float32)]
        src["embedding"] = vecs[0]
        src["passages"] = [{"text": t, "embedding": v} for t, v in zip(passage_texts, vecs, strict=True)]
    return src


def bulk_actions(
    docs: Iterable[Document],
    blocks: Iterable[np.ndarray | None],
    texts: Iterable[Sequence[str]],
    index: str,
    ce_text: bool = False,
) -> Iterator[dict[str, Any]]:
    """``index`` actions with deterministic ``_id`` (the document id): re-running a batch overwrites."""
    for doc, vecs, ptexts in zip(docs, blocks, texts, strict=True):
        src = document_source(doc, vecs, ptexts, ce_text)
        yield {"_op_type": "index", "_index": index, "_id": doc.id, "_source": src}


#: Painless for ``_reindex`` into an Elasticsearch version that maps ``ce_text``: what :func:`document_source` sets.
CE_TEXT_SCRIPT = f"if (ctx._source.ce_text == null) {{ {ce_text_painless('ctx._source')} }}"


def reindex_body(alias: str, dest: str, engine: str, scripts: bool = True) -> dict[str, Any]:
    """The ``_reindex`` body that copies ``alias`` into ``dest``; on Elasticsearch with Painless (``scripts``) it
    fills ``ce_text`` where an older version lacks it (:data:`CE_TEXT_SCRIPT`), so ``rerank_ce`` works on the copy."""
    body: dict[str, Any] = {"source": {"index": alias}, "dest": {"index": dest}}
    if engine == "elasticsearch" and scripts:
        body["script"] = {"lang": "painless", "source": CE_TEXT_SCRIPT}
    return body


@dataclass
class BulkReport:
    """Outcome of a bulk ingest: counts, each failed document's id, status and reason, and the ids written."""

    ok: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    written_ids: list[str] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed": self.failed, "seconds": self.seconds}


class BulkInterruptedError(ClusterUnavailableError):
    """The cluster went away during a bulk ingest. ``report`` holds what was written before; ids are
    deterministic, so running the same ingest again completes it without duplicates."""

    def __init__(self, message: str, report: BulkReport) -> None:
        super().__init__(message)
        self.report = report

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self), self.report))


class ClusterBackend:
    """Index and search an Elasticsearch or OpenSearch cluster with the embedded engine's interface.

    Args:
        client: An ``elasticsearch.Elasticsearch`` or ``opensearchpy.OpenSearch`` (see :meth:`connect`).
        alias: The alias searched and written; versioned indices are ``<alias>-v<N>``.
        passages: Rescore and kNN over the nested ``passages`` (best passage), like the embedded engine.
        passage_config: How long bodies are cut (must match what the embedded engine uses for parity).
        dialect: ``elasticsearch`` or ``opensearch`` (or a :class:`Dialect`).
        config: The connection settings, used to redact error messages.

    Example:
        >>> be = ClusterBackend.connect(ClusterConfig.from_env(engine="opensearch"))   # doctest: +SKIP
        >>> be.setup(encoder.info)                                                         # doctest: +SKIP
        >>> be.index_documents(docs, encoder).ok                                           # doctest: +SKIP
        500
    """

    def __init__(
        self,
        client: Any,
        alias: str = ALIAS,
        passages: bool = True,
        passage_config: PassageConfig | None = None,
        dialect: str | Dialect = "elasticsearch",
        config: ClusterConfig | None = None,
    ) -> None:
        self.client = client
        self.alias = alias
        self.passages = passages
        self.passage_config = passage_config or PassageConfig()
        self.dialect = get_dialect(dialect) if isinstance(dialect, str) else dialect
        self.config = config
        self._caps: Capabilities | None = None
        self._ce_text = False  # the current index maps ce_text (a yes is kept; a no is asked again)
        self._info: dict[str, Any] | None = None
        self._notices: set[str] = set()

    @property
    def engine(self) -> str:
        return self.dialect.name

    # ------------------------------------------------------------------ connection
    @classmethod
    def connect(cls, cfg: ClusterConfig, **kwargs: Any) -> ClusterBackend:
        """A backend for ``cfg`` after checking that the server answers and is the engine ``cfg`` names.

        Raises:
            ClusterUnavailableError: nothing answers at the URL (the message names it and the start command).
            ClusterAuthError: the credentials were refused (they are never printed).
            ClusterError: the server is the other engine, or a version the installed client cannot talk to.
        """
        dialect = get_dialect(cfg.engine)
        client = dialect.make_client(cfg)
        backend = cls(client, alias=cfg.alias, dialect=dialect, config=cfg, **kwargs)
        backend._info = dict(backend._call(client.info))
        dialect.check_server(backend._info, redact(cfg.url))
        return backend

    def _redact(self, text: str) -> str:
        return self.config.redact(text) if self.config else redact(text)

    def _url(self) -> str:
        return redact(self.config.url) if self.config else "the cluster"

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the client, turning connection, authentication and product errors into clear es-biomed errors."""
        d = self.dialect
        try:
            return fn(*args, **kwargs)
        except d.connection_errors() as exc:
            raise ClusterUnavailableError(
                f"no {d.display} answers at {self._url()} ({type(exc).__name__}); start a local node with "
                f"`{d.start_command}` and set {d.env_prefix}_URL to the URL it prints"
            ) from None
        except d.auth_errors() as exc:
            raise ClusterAuthError(
                f"{d.display} at {self._url()} refused the credentials (HTTP {d.status_of(exc)}); check "
                f"{d.env_prefix}_USERNAME / {d.env_prefix}_PASSWORD or {d.env_prefix}_API_KEY"
            ) from None
        except Exception as exc:
            if type(exc).__name__ == "UnsupportedProductError":  # elasticsearch-py talking to another server
                raise ClusterError(
                    f"{self._url()} is not Elasticsearch (the client found no X-Elastic-Product header); for "
                    "OpenSearch use --backend opensearch and OPENSEARCH_URL"
                ) from None
            raise

    def capabilities(self) -> Capabilities:
        """What this cluster can run (modules on every node, license); read once.

        Where the probe is not allowed (a user without the ``monitor`` privilege), everything is assumed
        present and a refusal at search time says which feature was missing.
        """
        if self._caps is None:
            info = self._info if self._info is not None else dict(self._call(self.client.info))
            version = str(info.get("version", {}).get("number", "?"))
            try:
                nodes = self._call(self.client.nodes.info, metric="plugins")["nodes"]
            except ClusterError:
                raise
            except Exception as exc:
                logger.info("cannot read _nodes/plugins (%s); assuming every feature is present", type(exc).__name__)
                every = {"lang-painless", "lang-mustache", "reindex", "ingest-common", "analysis-common"}
                every |= {"x-pack-rank-rrf", "opensearch-knn"}
                self._caps = Capabilities(self.engine, version, frozenset(every), "enterprise")  # type: ignore[arg-type]
                return self._caps
            sets = [
                {m["name"] for m in n.get("modules", [])} | {p["name"] for p in n.get("plugins", [])}
                for n in nodes.values()
            ]
            modules = frozenset(set.intersection(*sets)) if sets else frozenset()
            lic = self.dialect.license(self.client) if "x-pack-core" in modules else None
            self._caps = Capabilities(self.engine, version, modules, lic)  # type: ignore[arg-type]
        return self._caps

    def _notice(self, key: str, message: str) -> None:
        if key not in self._notices:
            self._notices.add(key)
            logger.warning(message)

    # ------------------------------------------------------------------ lifecycle
    def indices(self) -> list[str]:
        """Concrete indices behind the alias (empty if the alias does not exist)."""
        if not self._call(self.client.indices.exists_alias, name=self.alias):
            return []
        return sorted(self._call(self.client.indices.get_alias, name=self.alias))

    def _versions(self) -> list[int]:
        names = self._call(
            self.client.indices.get, index=f"{self.alias}-v*", allow_no_indices=True, expand_wildcards="open"
        )
        out = []
        for name in names:
            m = re.fullmatch(re.escape(self.alias) + r"-v(\d+)", name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def template_name(self) -> str:
        return TEMPLATE_NAME if self.alias == ALIAS else self.alias

    def _template(
        self, enc: dict[str, Any], index_options: dict[str, Any] | None, analyzer: str, pipeline: str | None
    ) -> dict[str, Any]:
        return index_template(
            int(enc["dims"]),
            enc,
            index_options,
            self.alias,
            engine=self.engine,
            analyzer=analyzer,
            default_pipeline=pipeline,
        )

    def setup(
        self,
        encoder: EncoderInfo | dict[str, Any],
        index_options: dict[str, Any] | None = None,
        pipeline_model_id: str | None = None,
        analyzer: str | None = None,
    ) -> dict[str, Any]:
        """Install the index template and the search template, and create ``<alias>-v1`` behind the alias if needed.

        Idempotent. Refuses to proceed when the alias already points at an index built with another encoder.
        With ``pipeline_model_id``, installs the in-cluster embedding pipeline and makes it the indices'
        ``index.default_pipeline``. The stored search template is skipped (and reported) on a cluster without
        ``lang-mustache``. ``analyzer`` defaults to :meth:`default_analyzer`.
        """
        enc = encoder.to_dict() if isinstance(encoder, EncoderInfo) else dict(encoder)
        if self.indices():
            self.check_encoder(enc)
        caps = self.capabilities()
        analyzer = analyzer or self.default_analyzer()
        if pipeline_model_id:
            pipeline = ingest_pipeline(pipeline_model_id, ce_text=self.engine == "elasticsearch")
            self._call(self.client.ingest.put_pipeline, id=PIPELINE_ID, body=pipeline)
        body = self._template(enc, index_options, analyzer, PIPELINE_ID if pipeline_model_id else None)
        self._call(self.client.indices.put_index_template, name=self.template_name(), body=body)
        search_template: bool | str = False
        if caps.search_templates:
            source = search_template_source(self.engine)
            self._call(
                self.client.put_script, id=SEARCH_TEMPLATE_ID, body={"script": {"lang": "mustache", "source": source}}
            )
            search_template = True
        else:
            search_template = "not installed: the cluster has no lang-mustache module"
        created = None
        if not self.indices():
            created = versioned_index(self.alias, (max(self._versions(), default=0)) + 1)
            self._call(
                self.client.indices.create, index=created, body={"aliases": {self.alias: {"is_write_index": True}}}
            )
        return {
            "alias": self.alias,
            "indices": self.indices(),
            "created": created,
            "template": self.template_name(),
            "search_template": search_template,
        }

    def default_analyzer(self) -> str:
        """``english`` where the cluster has analysis-common, else ``standard`` (with a logged notice)."""
        if self.capabilities().english_analyzer:
            return "english"
        self._notice(
            "analyzer",
            f"{self.engine} at {self._url()} has no analysis-common module (no english analyzer): text fields use "
            "the standard analyzer (no stemming, no stop words)",
        )
        return "standard"

    def status(self) -> dict[str, Any]:
        """Engine and version, alias, indices with document counts, encoder identity, installed templates."""
        indices = self.indices()
        counts = {i: self._call(self.client.count, index=i)["count"] for i in indices}
        caps = self.capabilities()
        return {
            "engine": self.engine,
            "version": caps.version,
            "alias": self.alias,
            "indices": counts,
            "encoder": self.encoder_meta() if indices else None,
            "index_template": bool(self._call(self.client.indices.exists_index_template, name=self.template_name())),
            "search_template": self._script_exists(SEARCH_TEMPLATE_ID),
            "capabilities": {k: v for k, v in caps.to_dict().items() if k not in ("engine", "version", "modules")},
        }

    def _script_exists(self, script_id: str) -> bool:
        try:
            self._call(self.client.get_script, id=script_id)
        except self.dialect.not_found():
            return False
        return True

    def reindex(
        self,
        encoder: EncoderInfo | dict[str, Any],
        delete_old: bool = False,
        index_options: dict[str, Any] | None = None,
        analyzer: str | None = None,
        poll_seconds: float = 1.0,
        timeout_seconds: float = 6 * 3600,
    ) -> dict[str, Any]:
        """Copy the current index into the next version (current template) and swap the alias atomically.

        The copy runs as a server-side task that is polled (never re-sent on a client timeout). Searches see
        the old index until the swap and the new one after it. Vectors are copied, so the encoder must be the
        same one; to change encoders, index the corpus again into a fresh alias.

        Raises:
            ClusterError: the task failed or reported failures (the alias is left on the old index).
        """
        enc = encoder.to_dict() if isinstance(encoder, EncoderInfo) else dict(encoder)
        old = self.indices()
        if not old:
            raise ClusterError(f"alias {self.alias!r} does not exist; run `es-biomed {self._cli()} setup` first")
        if not self.capabilities().reindex:
            raise ClusterError(f"{self.engine} at {self._url()} has no reindex module; `_reindex` is unavailable")
        self.check_encoder(enc)
        self._call(
            self.client.indices.put_index_template,
            name=self.template_name(),
            body=self._template(enc, index_options, analyzer or self.default_analyzer(), None),
        )
        new = versioned_index(self.alias, max(self._versions(), default=0) + 1)
        self._call(self.client.indices.create, index=new)
        started = self._call(
            self.client.reindex,
            body=reindex_body(self.alias, new, self.engine, self.capabilities().scripts),
            wait_for_completion=False,
            refresh=True,
        )
        task_id = started["task"]
        deadline = time.monotonic() + timeout_seconds
        while True:
            task = self._call(self.client.tasks.get, task_id=task_id)
            if task.get("completed"):
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"reindex task {task_id} into {new} still running after {timeout_seconds:.0f}s")
            time.sleep(poll_seconds)
        if task.get("error"):
            raise ClusterError(
                f"reindex task {task_id} into {new} failed: {task['error']}; the alias still points at {old}"
            )
        result = task.get("response", {})
        if result.get("failures"):
            raise ClusterError(
                f"reindex into {new} had {len(result['failures'])} failures; the alias still points at {old}"
            )
        actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": self.alias}} for i in old]
        actions.append({"add": {"index": new, "alias": self.alias, "is_write_index": True}})
        self._call(self.client.indices.update_aliases, body={"actions": actions})
        self._ce_text = False  # the alias now points at another index
        if delete_old:
            for i in old:
                self._call(self.client.indices.delete, index=i)
        return {
            "alias": self.alias,
            "from": old,
            "to": new,
            "task": task_id,
            "copied": result.get("total", 0),
            "deleted_old": delete_old,
        }

    def drop(self) -> list[str]:
        """Delete this alias's versioned indices and its index template, each by exact name (no wildcard, which
        ``action.destructive_requires_name`` refuses). Returns the indices deleted."""
        names = [versioned_index(self.alias, v) for v in self._versions()]
        for name in names:
            self._call(self.client.indices.delete, index=name)
        self._ce_text = False
        try:
            self._call(self.client.indices.delete_index_template, name=self.template_name())
        except self.dialect.not_found():
            pass
        return names

    def _cli(self) -> str:
        return "es" if self.engine == "elasticsearch" else "opensearch"

    # ------------------------------------------------------------------ identity
    def _mapping(self) -> dict[str, Any]:
        (index,) = self.indices()[-1:] or (None,)
        if index is None:
            raise ClusterError(f"alias {self.alias!r} does not exist; run `es-biomed {self._cli()} setup` first")
        return self._call(self.client.indices.get_mapping, index=index)[index]["mappings"]  # type: ignore[no-any-return]

    def has_ce_text(self) -> bool:
        """Whether the current index maps ``ce_text`` (Elasticsearch indices made by this template do; OpenSearch
        refuses ``rerank_ce``, and its template has no such field). A yes is remembered, so a ``rerank_ce`` search
        costs no mapping request; a no is asked again (a reindex elsewhere may add the field)."""
        if not self._ce_text:
            self._ce_text = CE_TEXT_FIELD in self._mapping().get("properties", {})
        return self._ce_text

    def encoder_meta(self) -> dict[str, Any]:
        """The encoder recorded in the mapping's ``_meta``, with the mapped vector dims."""
        mappings = self._mapping()
        meta = dict(mappings.get("_meta", {}).get("encoder", {}))
        meta["mapped_dims"] = mappings.get("properties", {}).get("embedding", {}).get(self.dialect.dims_key)
        return meta

    def check_encoder(self, encoder: EncoderInfo | dict[str, Any]) -> None:
        """Before any write or search: the encoder's dims must equal the mapping's (and its fingerprint the recorded one).

        Raises:
            EncoderMismatchError: names both encoders.
        """
        enc = encoder.to_dict() if isinstance(encoder, EncoderInfo) else dict(encoder)
        mine = self.encoder_meta()
        if mine.get("mapped_dims") != enc.get("dims"):
            raise EncoderMismatchError(
                f"alias {self.alias!r} maps {mine.get('mapped_dims')}-dim vectors but encoder {enc.get('name')!r} "
                f"produces {enc.get('dims')}; index into a new alias or use the encoder the index was built with"
            )
        if mine.get("fingerprint") and mine.get("fingerprint") != enc.get("fingerprint"):
            raise EncoderMismatchError(
                f"alias {self.alias!r} was built with encoder {mine.get('name')!r} (fingerprint {mine.get('fingerprint')}); "
                f"got {enc.get('name')!r} (fingerprint {enc.get('fingerprint')})"
            )

    # ------------------------------------------------------------------ writes
    def index_documents(
        self,
        docs: Iterable[Document],
        encoder: Encoder,
        *,
        batch_size: int = 256,
        encode_batch_size: int = 32,
        max_retries: int = 5,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        raise_on_error: bool = False,
        refresh: bool = True,
    ) -> BulkReport:
        """Embed and bulk-index ``docs``; 429s are retried with capped exponential backoff.

        Returns:
            A :class:`BulkReport`; each failed document is listed with its id, HTTP status and reason.

        Raises:
            EncoderMismatchError: before any write, when the encoder's dims or identity differ from the mapping's.
            BulkInterruptedError: the cluster went away; ``.report`` holds the documents written before.
            BulkIndexError: only with ``raise_on_error=True`` (the client library's class).
        """
        helpers = self.dialect.helpers()
        self.check_encoder(encoder.info)
        ce_text = self.has_ce_text()
        t0 = time.perf_counter()
        report = BulkReport()
        batch: list[Document] = []

        def flush() -> None:
            texts, blocks = embed_passages(batch, encoder, self.passage_config, encode_batch_size)
            actions = bulk_actions(batch, blocks, texts, self.alias, ce_text)
            stream = helpers.streaming_bulk(
                self.client,
                actions,
                chunk_size=500,
                max_retries=max_retries,
                initial_backoff=initial_backoff,
                max_backoff=max_backoff,
                raise_on_error=raise_on_error,
                **self.dialect.bulk_kwargs(),
            )
            try:
                for ok, info in stream:
                    item = next(iter(info.values()))
                    if ok:
                        report.ok += 1
                        report.written_ids.append(str(item.get("_id")))
                    else:
                        report.failed.append(
                            {"id": item.get("_id"), "status": item.get("status"), "error": item.get("error")}
                        )
            except self.dialect.connection_errors() as exc:
                report.seconds = round(time.perf_counter() - t0, 3)
                raise BulkInterruptedError(
                    f"{self.engine} at {self._url()} went away during the bulk ingest into {self.alias} "
                    f"({type(exc).__name__}) after {report.ok} documents were written (last: "
                    f"{report.written_ids[-1] if report.written_ids else 'none'}); ids are deterministic, so "
                    "running the same ingest again completes it without duplicates",
                    report,
                ) from None
            batch.clear()

        for doc in docs:
            batch.append(doc)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        if refresh:
            self._call(self.client.indices.refresh, index=self.alias)
        report.seconds = round(time.perf_counter() - t0, 3)
        if report.failed:
            logger.warning(
                "bulk ingest into %s: %d documents failed (first: %s)",
                self.alias,
                len(report.failed),
                report.failed[0],
            )
        return report

    def delete(self, doc_ids: Iterable[str]) -> int:
        """Delete documents by id; returns how many existed."""
        helpers = self.dialect.helpers()
        actions = ({"_op_type": "delete", "_index": self.alias, "_id": d} for d in doc_ids)
        ok, _ = helpers.bulk(self.client, actions, raise_on_error=False, ignore_status=(404,), stats_only=True)
        self._call(self.client.indices.refresh, index=self.alias)
        return int(ok)

    # ------------------------------------------------------------------ reads
    def count(self) -> int:
        return int(self._call(self.client.count, index=self.alias)["count"])

    def request(self, plan: SearchPlan, query_vector: Any = None) -> dict[str, Any]:
        """The exact ``_search`` body this backend sends for ``plan`` (in-cluster modes).

        Raises:
            PlanError: ``rerank_ce`` on an Elasticsearch index without ``ce_text`` (made before that field).
        """
        if plan.mode == "rerank_ce" and self.engine == "elasticsearch" and not self.has_ce_text():
            raise PlanError(
                f"rerank_ce reads {CE_TEXT_FIELD!r}, which {self.indices()[-1]} (alias {self.alias!r}) does not map: "
                f"it was made before that field; `es-biomed {self._cli()} reindex` copies it into a new version "
                f"that has it"
            )
        return compile_search(plan, query_vector, dialect=self.engine, passages=self.passages)  # type: ignore[arg-type]

    def _needs_scripts(self, plan: SearchPlan) -> None:
        if plan.mode in ("rerank", "hybrid_rerank", "rerank_ce") and not self.capabilities().scripts:
            raise ClusterError(
                f"mode {plan.mode!r} rescores with a Painless script_score, but {self.engine} "
                f"{self.capabilities().version} at {self._url()} has no lang-painless module"
            )

    def _client_side_hybrid(self) -> bool:
        caps = self.capabilities()
        if self.engine == "opensearch":
            self._notice(
                "hybrid",
                "OpenSearch hybrid search needs the neural-search plugin's search pipeline: fusing BM25 and kNN "
                "client-side with the same RRF arithmetic",
            )
            return True
        if not caps.rrf_retriever:
            self._notice(
                "hybrid",
                f"the rrf retriever needs an Enterprise or trial license (this cluster: {caps.license or 'no x-pack'}); "
                "fusing BM25 and kNN client-side with the same RRF arithmetic",
            )
            return True
        return False

    def search(
        self, plan: SearchPlan, query_vector: np.ndarray | None = None, with_sources: bool = False
    ) -> SearchResults:
        """Run ``plan`` in the cluster (the rescore happens there)."""
        if plan.mode != "bm25" and query_vector is None:
            raise PlanError(f"mode {plan.mode!r} needs a query vector")
        vec = None if query_vector is None else [float(x) for x in query_vector]
        t0 = time.perf_counter()
        if plan.mode in ("hybrid", "hybrid_rerank") and self._client_side_hybrid():
            hits = self._hybrid(plan, vec)
            sources = self.get(h.doc_id for h in hits) if with_sources else {}
            return SearchResults(hits=hits, sources=sources, took_ms=(time.perf_counter() - t0) * 1000)
        self._needs_scripts(plan)
        try:
            resp = self._call(self.client.search, index=self.alias, body=self.request(plan, vec))
        except self.dialect.api_error() as exc:
            if plan.mode in ("hybrid", "hybrid_rerank") and self.dialect.status_of(exc) == 403:
                # the license probe said yes but the cluster refused: remember, tell, and fuse client-side
                caps = self.capabilities()
                self._caps = Capabilities(caps.engine, caps.version, caps.modules - {"x-pack-rank-rrf"}, caps.license)
                self._client_side_hybrid()
                return self.search(plan, query_vector, with_sources)
            raise ClusterError(
                f"{self.engine} refused the {plan.mode} search: {self._redact(str(exc))[:600]}"
            ) from None
        hits = [Hit(h["_id"], float(h["_score"])) for h in resp["hits"]["hits"]]
        sources = {h["_id"]: h.get("_source", {}) for h in resp["hits"]["hits"]} if with_sources else {}
        return SearchResults(hits=hits, sources=sources, took_ms=(time.perf_counter() - t0) * 1000)

    def _hybrid(self, plan: SearchPlan, vec: list[float] | None) -> list[Hit]:
        """RRF of the in-cluster BM25 and kNN top ``window_size`` (as the ``rrf`` retriever), then for
        ``hybrid_rerank`` the cosine rescore over the fused window (as the ``rescorer`` retriever)."""
        lexical = [h.doc_id for h in self.search(plan.replace(mode="bm25", k=plan.window_size), None).hits]
        dense = [h.doc_id for h in self.search(plan.replace(mode="dense", k=plan.window_size), vec).hits]  # type: ignore[arg-type]
        fused = reciprocal_rank_fusion([lexical, dense], plan.rank_constant, plan.window_size)
        if plan.mode == "hybrid_rerank":
            cos = self.vector_scores(vec, [d for d, _ in fused[: plan.window_size]])  # type: ignore[arg-type]
            fused = apply_rescore(fused, {d: c + 1.0 for d, c in cos.items()}, plan)
        return [Hit(d, s) for d, s in fused[: plan.k]]

    def vector_scores(self, query_vector: Sequence[float], doc_ids: Sequence[str]) -> dict[str, float]:
        """Cosine of ``query_vector`` with each document's best passage (vectors read from ``_source``)."""
        if not doc_ids:
            return {}
        field = "passages.embedding" if self.passages else "embedding"
        body = {"query": {"ids": {"values": list(doc_ids)}}, "size": len(doc_ids), "_source": {"includes": [field]}}
        resp = self._call(self.client.search, index=self.alias, body=body)
        q = np.asarray(query_vector, dtype=np.float32)
        q = q / (np.linalg.norm(q) or 1.0)
        out = {}
        for h in resp["hits"]["hits"]:
            src = h.get("_source", {})
            rows = [p["embedding"] for p in src.get("passages", []) if "embedding" in p] if self.passages else []
            if not self.passages and "embedding" in src:
                rows = [src["embedding"]]
            if rows:
                m = np.asarray(rows, dtype=np.float32)
                m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
                out[h["_id"]] = float(np.max(m @ q))
        return out

    def search_template(self, params: dict[str, Any]) -> SearchResults:
        """Run the stored search template ``es-biomed-rescore`` with ``params`` (``query``, ``query_vector``...)."""
        t0 = time.perf_counter()
        body = {"id": SEARCH_TEMPLATE_ID, "params": params}
        resp = self._call(self.client.search_template, index=self.alias, body=body)
        hits = [Hit(h["_id"], float(h["_score"])) for h in resp["hits"]["hits"]]
        return SearchResults(hits=hits, took_ms=(time.perf_counter() - t0) * 1000)

    def get(self, doc_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(doc_ids)
        if not ids:
            return {}
        body = {
            "query": {"ids": {"values": ids}},
            "size": len(ids),
            "_source": {"excludes": ["embedding", "passages"]},
        }
        resp = self._call(self.client.search, index=self.alias, body=body)
        return {h["_id"]: h.get("_source", {}) for h in resp["hits"]["hits"]}


#: CLI / Searcher backend names of the cluster engines.
CLUSTER_ENGINES = {"es": "elasticsearch", "opensearch": "opensearch", "elasticsearch": "elasticsearch"}


def connect_cluster(backend: str, alias: str | None = None, **kwargs: Any) -> ClusterBackend:
    """A cluster backend (``es`` / ``elasticsearch`` or ``opensearch``) configured from the environment, after
    checking that the server answers and is that engine (credentials never printed).

    Raises:
        ClusterError: no URL configured, the server is unreachable, refuses the credentials or is another engine.
    """
    cfg = ClusterConfig.from_env(engine=CLUSTER_ENGINES.get(backend, backend), alias=alias)
    return ClusterBackend.connect(cfg, **kwargs)
