"""Package error hierarchy.

Every error raised on purpose by es-biomed derives from :class:`EsBiomedError` and, where it fits,
from the matching builtin (``ValueError``, ``RuntimeError``...), so callers can catch either
(pattern from ``elasticsearch.dsl.exceptions``). Errors that may cross a Celery boundary implement
``__reduce__`` so they survive a pickle round trip.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EsBiomedError",
    "RecordError",
    "RejectedRecordsError",
    "EncoderMismatchError",
    "EncoderSwappedError",
    "IndexLockedError",
    "IndexNotFoundError",
    "IndexCorruptError",
    "MissingDependencyError",
    "PlanError",
    "ClusterError",
    "ClusterUnavailableError",
    "ClusterAuthError",
]


class EsBiomedError(Exception):
    """Base class of every es-biomed error."""


class RecordError(ValueError, EsBiomedError):
    """A corpus record is malformed, empty, oversized or not UTF-8.

    Args:
        path: File the record came from.
        line: 1-based line (JSONL, TSV) or row (CSV) number; for JSON documents the index path.
        field: The offending field, or ``"(record)"`` when the record as a whole is bad.
        reason: What is wrong and, where useful, what to do.
    """

    def __init__(self, path: str, line: int | str, field: str, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = reason
        super().__init__(f"{self.path}:{line}: field {field!r}: {reason}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.path, self.line, self.field, self.reason))

    def to_dict(self) -> dict[str, object]:
        return {"file": self.path, "line": self.line, "field": self.field, "error": self.reason}


class RejectedRecordsError(EsBiomedError):
    """Raised at the end of a run in which records were quarantined (``on_error="quarantine"``)."""

    def __init__(self, count: int, rejects_path: str) -> None:
        self.count = count
        self.rejects_path = str(rejects_path)
        super().__init__(f"{count} record(s) rejected; see {self.rejects_path}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.count, self.rejects_path))


class EncoderMismatchError(ValueError, EsBiomedError):
    """The encoder given does not match the one that built the index."""


class EncoderSwappedError(EncoderMismatchError):
    """A cluster alias now points at an index built with another encoder than the one a query was encoded with
    (a zero-downtime model change swapped it): load the new index's encoder and encode the query again."""


class IndexLockedError(RuntimeError, EsBiomedError):
    """Another writer holds the index."""


class IndexNotFoundError(FileNotFoundError, EsBiomedError):
    """No es-biomed index exists at the given path."""


class IndexCorruptError(RuntimeError, EsBiomedError):
    """An embedded index breaks an invariant (a store is missing, truncated or disagrees with the others).

    The message names the file and the command that repairs it; nothing is written past the mismatch.
    """

    def __init__(self, path: str, problem: str, remedy: str) -> None:
        self.path = str(path)
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"{self.path}: {problem}. {remedy}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.path, self.problem, self.remedy))


class MissingDependencyError(ImportError, EsBiomedError):
    """An optional dependency is missing; the message gives the ``pip install`` line."""


class PlanError(ValueError, EsBiomedError):
    """A :class:`~es_biomed.query.SearchPlan` has invalid parameters; ``param`` names the one at fault where a
    caller may want to point at it (e.g. ``"query"``)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self), self.param))


class ClusterError(RuntimeError, EsBiomedError):
    """A cluster (Elasticsearch or OpenSearch) refused a request, or is not the engine or version expected."""


class ClusterUnavailableError(ClusterError):
    """No cluster answers at the configured URL; the message names the URL and how to start a local node."""


class ClusterAuthError(ClusterError):
    """The cluster refused the credentials (never included in the message)."""


def require(module: str, extra: str) -> Any:
    """Import an optional dependency or raise :class:`MissingDependencyError` with the install line."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised in the no-extras test
        raise MissingDependencyError(
            f"{module!r} is required for this feature. Install it with: pip install 'es-biomed[{extra}]'"
        ) from exc
