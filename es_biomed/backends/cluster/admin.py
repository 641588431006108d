"""The index lifecycle of a cluster alias: versioned indices, the template, the search template and pipeline
(``setup``), ``status``, a zero-downtime ``reindex`` into the next version with an atomic alias swap, ``drop``."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from es_biomed.backends.cluster.bulk import reindex_body
from es_biomed.backends.cluster.connection import ClusterConnection
from es_biomed.backends.es_mappings import (
    ALIAS,
    PIPELINE_ID,
    SEARCH_TEMPLATE_ID,
    TEMPLATE_NAME,
    index_template,
    ingest_pipeline,
    search_template_source,
    versioned_index,
)
from es_biomed.encode.base import EncoderInfo
from es_biomed.errors import (
    ClusterAuthError,
    ClusterError,
)

__all__ = ["IndexLifecycle"]

logger = logging.getLogger(__name__)


class IndexLifecycle(ClusterConnection):
    """Create, inspect, version and drop the indices behind the alias."""

    # ------------------------------------------------------------------ lifecycle
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
        self,
        enc: dict[str, Any],
        index_options: dict[str, Any] | None,
        analyzer: str,
        pipeline: str | None,
        shards: int | None = None,
        replicas: int | None = None,
    ) -> dict[str, Any]:
        return index_template(
            int(enc["dims"]),
            enc,
            index_options,
            self.alias,
            engine=self.engine,
            analyzer=analyzer,
            default_pipeline=pipeline,
            shards=shards,
            replicas=replicas,
        )

    def setup(
        self,
        encoder: EncoderInfo | dict[str, Any],
        index_options: dict[str, Any] | None = None,
        pipeline_model_id: str | None = None,
        analyzer: str | None = None,
        shards: int | None = None,
        replicas: int | None = None,
    ) -> dict[str, Any]:
        """Install the index template and the search template, and create ``<alias>-v1`` behind the alias if needed.

        Idempotent. Refuses to proceed when the alias already points at an index built with another encoder.
        With ``pipeline_model_id``, installs the in-cluster embedding pipeline and makes it the indices'
        ``index.default_pipeline``. The stored search template is skipped (and reported) on a cluster without
        ``lang-mustache``. ``analyzer`` defaults to :meth:`default_analyzer`. ``shards`` and ``replicas`` go into
        the template's settings (default: one shard, ``auto_expand_replicas: 0-1``).

        Returns:
            The alias, its indices, the index created (or None), the template names, and ``warnings`` (also
            logged): replicas that the cluster's data nodes cannot all hold (the index stays yellow), or shards /
            replicas given for an alias whose index already exists (they apply to its next version).
        """
        enc = encoder.to_dict() if isinstance(encoder, EncoderInfo) else dict(encoder)
        existing = self.indices()
        if existing:
            self.check_encoder(enc)
        caps = self.capabilities()
        warnings = self._layout_warnings(existing, shards, replicas)
        analyzer = analyzer or self.default_analyzer()
        if pipeline_model_id:
            pipeline = ingest_pipeline(pipeline_model_id, ce_text=self.engine == "elasticsearch")
            self._call(self.client.ingest.put_pipeline, id=PIPELINE_ID, body=pipeline)
        body = self._template(
            enc, index_options, analyzer, PIPELINE_ID if pipeline_model_id else None, shards=shards, replicas=replicas
        )
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
            "warnings": warnings,
        }

    def _layout_warnings(self, existing: list[str], shards: int | None, replicas: int | None) -> list[str]:
        """What ``setup`` warns about (and logs) for the shards and replicas asked for."""
        warnings = []
        nodes = self._data_nodes() if replicas else None
        if replicas and nodes is not None and replicas + 1 > nodes:
            copies, n_shards = replicas + 1, shards or 1
            warnings.append(
                f"{replicas} replica(s) need {copies} data nodes (a shard's primary and each replica on different "
                f"nodes) but {self.engine} at {self._url()} has {nodes}: the index stays yellow, with "
                f"{n_shards * (copies - nodes)} of its {n_shards * copies} shard copies unassigned, until "
                f"{copies - nodes} more data node(s) join" + (f" (or use --replicas {nodes - 1})" if nodes else "")
            )
        if existing and (shards is not None or replicas is not None):
            warnings.append(
                f"alias {self.alias!r} already has {', '.join(existing)}: the template's shards/replicas apply to the "
                f"next index version (`es-biomed {self._cli()} reindex`), not to the index that exists"
            )
        for w in warnings:
            logger.warning(w)
        return warnings

    def _data_nodes(self) -> int | None:
        """``number_of_data_nodes`` of the cluster health, or None where the user may not read it."""
        try:
            return int(self._call(self.client.cluster.health)["number_of_data_nodes"])
        except (ClusterAuthError, self.dialect.api_error()) as exc:
            logger.info("cannot read the cluster health (%s); not checking the replicas", type(exc).__name__)
            return None

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
        new = self.next_version(enc, index_options, analyzer)
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
        self.swap_alias(old, new, delete_old)
        return {
            "alias": self.alias,
            "from": old,
            "to": new,
            "task": task_id,
            "copied": result.get("total", 0),
            "deleted_old": delete_old,
        }

    def swap_alias(self, old: list[str], new: str, delete_old: bool = False) -> None:
        """Point the alias at ``new`` instead of ``old`` in one atomic ``_aliases`` call (searches see one or the
        other, never neither), then delete ``old`` if asked."""
        actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": self.alias}} for i in old]
        actions.append({"add": {"index": new, "alias": self.alias, "is_write_index": True}})
        self._call(self.client.indices.update_aliases, body={"actions": actions})
        self._ce_text = False  # the alias now points at another index
        if delete_old:
            for i in old:
                self._call(self.client.indices.delete, index=i)

    def next_version(self, encoder: dict[str, Any], index_options: dict[str, Any] | None, analyzer: str | None) -> str:
        """Install the template for ``encoder`` and create the alias's next versioned index (not yet behind the
        alias); returns its name."""
        self._call(
            self.client.indices.put_index_template,
            name=self.template_name(),
            body=self._template(encoder, index_options, analyzer or self.default_analyzer(), None),
        )
        new = versioned_index(self.alias, max(self._versions(), default=0) + 1)
        self._call(self.client.indices.create, index=new)
        return new

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
