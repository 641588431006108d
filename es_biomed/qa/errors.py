"""Errors of the QA package, in the project's hierarchy (:class:`~es_biomed.errors.EsBiomedError` plus a builtin).

:class:`QaParameterError` names the parameter that is wrong (``.param``), so a caller such as an HTTP endpoint can
answer with a 4xx that names it. Both errors pickle (``__reduce__``), as errors that may cross a process must.
"""

from __future__ import annotations

from es_biomed.errors import EsBiomedError

__all__ = ["ModelFilesError", "QaParameterError"]


class QaParameterError(ValueError, EsBiomedError):
    """A parameter of ``ask`` / the reader is invalid (empty question, ``k <= 0``, unknown reader name...).

    Args:
        param: The parameter's name (``"question"``, ``"k"``, ``"passages"``, ``"reader"``...).
        reason: What is wrong and, where useful, what to pass instead.
    """

    def __init__(self, param: str, reason: str) -> None:
        self.param = param
        self.reason = reason
        super().__init__(f"{param}: {reason}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.param, self.reason))


class ModelFilesError(FileNotFoundError, EsBiomedError):
    """A QA model's files are missing, unreadable or do not fit together."""
