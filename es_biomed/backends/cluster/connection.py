"""The connection to one alias of a cluster: the client, the dialect, redacted errors, the capabilities the cluster
has, and the encoder identity its mapping records. :class:`~es_biomed.backends.cluster.ClusterBackend` builds on it."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, TypeVar

from es_biomed.backends.cluster.config import ClusterConfig, redact
from es_biomed.backends.dialects import Capabilities, Dialect, get_dialect
from es_biomed.backends.es_mappings import (
    ALIAS,
)
from es_biomed.corpus.passages import PassageConfig
from es_biomed.encode.base import EncoderInfo
from es_biomed.errors import (
    ClusterAuthError,
    ClusterError,
    ClusterUnavailableError,
    EncoderMismatchError,
    EncoderSwappedError,
)
from es_biomed.query.es_compile import CE_TEXT_FIELD

__all__ = ["PIN_RECHECK_SECONDS", "ClusterConnection"]

#: How often a search looks the alias up again, to follow a swap (as the embedded engine's refresh, one second).
PIN_RECHECK_SECONDS = 1.0

_C = TypeVar("_C", bound="ClusterConnection")

logger = logging.getLogger(__name__)


class ClusterConnection:
    """The connection to one alias of a cluster; :class:`~es_biomed.backends.cluster.ClusterBackend` (the class to
    use) adds the index lifecycle, the writes and the searches.

    Args:
        client: An ``elasticsearch.Elasticsearch`` or ``opensearchpy.OpenSearch`` (see :meth:`connect`).
        alias: The alias searched and written; versioned indices are ``<alias>-v<N>``.
        passages: Rescore and kNN over the nested ``passages`` (best passage), like the embedded engine.
        passage_config: How long bodies are cut (must match what the embedded engine uses for parity).
        dialect: ``elasticsearch`` or ``opensearch`` (or a :class:`Dialect`).
        config: The connection settings, used to redact error messages.
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
        #: encoder fingerprint -> (the concrete index its query vectors go to, when the alias was last looked up).
        #: One per encoder: searchers sharing this backend may hold different encoders during a model change.
        self._pins: dict[str | None, tuple[str, float]] = {}
        self._default_fingerprint: str | None = None  # the encoder last checked: for searches that name none
        #: Searches sent again because shards had failed (see ``ClusterBackend._search_body``).
        self.shard_retries = 0

    @property
    def engine(self) -> str:
        return self.dialect.name

    # ------------------------------------------------------------------ connection
    @classmethod
    def connect(cls: type[_C], cfg: ClusterConfig, **kwargs: Any) -> _C:
        """A backend for ``cfg`` after checking that the server answers and is the engine ``cfg`` names.

        Raises:
            ClusterUnavailableError: nothing answers at the URL, or at any of the URLs (the message names them all
                and the command that starts a local node or cluster).
            ClusterAuthError: the credentials were refused (they are never printed).
            ClusterError: the server is the other engine, or a version the installed client cannot talk to.
        """
        dialect = get_dialect(cfg.engine)
        client = dialect.make_client(cfg)
        backend = cls(client, alias=cfg.alias, dialect=dialect, config=cfg, **kwargs)
        backend._info = dict(backend._call(client.info))
        dialect.check_server(backend._info, backend._url())
        return backend

    def redact(self, text: str) -> str:
        """``text`` with this connection's credentials (and any URL's user-info) hidden."""
        return self.config.redact(text) if self.config else redact(text)

    def _redact(self, text: str) -> str:  # the name the other methods use
        return self.config.redact(text) if self.config else redact(text)

    def _url(self) -> str:
        return ", ".join(redact(u) for u in self.config.urls) if self.config else "the cluster"

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the client, turning connection, authentication and product errors into clear es-biomed errors."""
        d = self.dialect
        try:
            return fn(*args, **kwargs)
        except d.connection_errors() as exc:
            if self.config and len(self.config.urls) > 1:
                raise ClusterUnavailableError(
                    f"no {d.display} node answers at any of the {len(self.config.urls)} URLs {self._url()} "
                    f"({type(exc).__name__}); start a local cluster with `{d.cluster_start_command}` (or "
                    f"`{d.cluster_make_target}`) and set {d.env_prefix}_URL to the URLs it prints"
                ) from None
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

    # ------------------------------------------------------------------ identity
    def indices(self) -> list[str]:
        """Concrete indices behind the alias (empty if the alias does not exist)."""
        if not self._call(self.client.indices.exists_alias, name=self.alias):
            return []
        return sorted(self._call(self.client.indices.get_alias, name=self.alias))

    def current_index(self) -> str:
        """The newest concrete index behind the alias.

        Raises:
            ClusterError: the alias does not exist (names the setup command).
        """
        (index,) = self.indices()[-1:] or (None,)
        if index is None:
            raise ClusterError(f"alias {self.alias!r} does not exist; run `es-biomed {self._cli()} setup` first")
        return index

    def _mapping(self, index: str | None = None) -> dict[str, Any]:
        index = index or self.current_index()
        return self._call(self.client.indices.get_mapping, index=index)[index]["mappings"]  # type: ignore[no-any-return]

    def has_ce_text(self) -> bool:
        """Whether the current index maps ``ce_text`` (Elasticsearch indices made by this template do; OpenSearch
        refuses ``rerank_ce``, and its template has no such field). A yes is remembered, so a ``rerank_ce`` search
        costs no mapping request; a no is asked again (a reindex elsewhere may add the field)."""
        if not self._ce_text:
            self._ce_text = CE_TEXT_FIELD in self._mapping().get("properties", {})
        return self._ce_text

    def encoder_meta(self, index: str | None = None) -> dict[str, Any]:
        """The encoder recorded in the mapping's ``_meta`` (of the alias's index, or of ``index``), with the mapped
        vector dims."""
        mappings = self._mapping(index)
        meta = dict(mappings.get("_meta", {}).get("encoder", {}))
        meta["mapped_dims"] = mappings.get("properties", {}).get("embedding", {}).get(self.dialect.dims_key)
        return meta

    def check_encoder(self, encoder: EncoderInfo | dict[str, Any]) -> None:
        """Before any write or search: the encoder's dims must equal the mapping's (and its fingerprint the recorded one).

        Raises:
            EncoderMismatchError: names both encoders.
        """
        index = self.current_index()
        enc = self.check_index_encoder(index, encoder)
        self._pins[enc.get("fingerprint")] = (index, time.monotonic())
        self._default_fingerprint = enc.get("fingerprint")

    def check_index_encoder(self, index: str, encoder: EncoderInfo | dict[str, Any]) -> dict[str, Any]:
        """:meth:`check_encoder` against one concrete index (a new version before its swap); returns the encoder's
        identity as a dict.

        Raises:
            EncoderMismatchError: names both encoders.
        """
        enc = encoder.to_dict() if isinstance(encoder, EncoderInfo) else dict(encoder)
        mine = self.encoder_meta(index)
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
        return enc

    def search_target(self, fingerprint: str | None = None) -> str:
        """The concrete index a search whose query vector comes from the encoder ``fingerprint`` goes to (``None``:
        the encoder :meth:`check_encoder` checked last; the alias itself when none was checked).

        Each encoder is pinned to the index it was checked against. The alias is looked up again at most every
        :data:`PIN_RECHECK_SECONDS`: a swap to an index of the same encoder moves the searches there, a swap to
        another encoder's index raises :class:`~es_biomed.errors.EncoderSwappedError`, so no query vector ever meets
        another encoder's documents, even while searchers sharing this backend hold different encoders.
        """
        fp = self._default_fingerprint if fingerprint is None else fingerprint
        if fp is None and not self._pins:
            return self.alias  # no encoder named or checked (BM25 only): the alias itself
        # (an encoder named but not pinned, or unpinned by a swap another searcher saw, is looked up now: never
        # sent to the alias blindly)
        pin = self._pins.get(fp)
        if pin is None or time.monotonic() - pin[1] >= PIN_RECHECK_SECONDS:
            return self.repin(fp)
        return pin[0]

    def repin(self, fingerprint: str | None = None) -> str:
        """Look the alias up now for the encoder ``fingerprint`` (see :meth:`search_target`); returns the index.

        Raises:
            EncoderSwappedError: the alias points at an index built with another encoder.
        """
        fp = self._default_fingerprint if fingerprint is None else fingerprint
        pinned = self._pins.get(fp, (None, 0.0))[0]
        current = self.current_index()
        if current != pinned:
            meta = self.encoder_meta(current)
            if fp and meta.get("fingerprint") != fp:
                self._pins.pop(fp, None)
                raise EncoderSwappedError(
                    f"alias {self.alias!r} now points at {current}, built with encoder {meta.get('name')!r} "
                    f"(fingerprint {meta.get('fingerprint')}); the query was encoded for "
                    f"{pinned or 'another index'} (fingerprint {fp}): load the new index's encoder and encode it again"
                )
        self._pins[fp] = (current, time.monotonic())
        return current

    def count(self) -> int:
        return int(self._call(self.client.count, index=self.alias)["count"])

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
