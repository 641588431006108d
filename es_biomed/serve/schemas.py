"""What the service accepts and returns: request bodies, response models, limits, and their translation to a
:class:`~es_biomed.query.plan.SearchPlan`.

Every bad input becomes a :class:`ParamError` (or FastAPI's own validation error), answered as a 4xx JSON body
that names the parameter::

    {"param": "k", "message": "k: must be at most 1000", "detail": [{"loc": ["query", "k"], "msg": "...", ...}]}
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from es_biomed.errors import EsBiomedError
from es_biomed.query.plan import (
    MAX_QUERY_CLAUSES,
    MAX_RANK_CONSTANT,
    MAX_RESCORE_WINDOW,
    MAX_WEIGHT,
    MAX_YEAR,
    MIN_YEAR,
    Filters,
    SearchPlan,
)
from es_biomed.query.presets import default_plan

__all__ = [
    "MAX_QUERY_CHARS",
    "MAX_K",
    "MAX_BODY_BYTES",
    "MAX_SOURCES",
    "MAX_SOURCE_CHARS",
    "PAGE_MODES",
    "Mode",
    "ParamError",
    "FiltersBody",
    "PlanBody",
    "ScoreParts",
    "SnippetOut",
    "HitOut",
    "SearchResponse",
    "AnswerOut",
    "AskResponse",
    "EmbedBody",
    "EmbedResponse",
    "MAX_EMBED_TEXTS",
    "HealthResponse",
    "ErrorResponse",
    "plan_from_params",
    "plan_from_body",
    "check_question",
]

MAX_QUERY_CHARS = 10_000
MAX_K = 1000
#: Largest request body (bytes) the service reads; a larger one is answered 413 before it is parsed. The largest
#: valid ``POST /search`` is far smaller: a query of MAX_QUERY_CHARS characters as ``\uXXXX`` escapes (12 bytes a
#: character outside the BMP) is 120 kB, MAX_SOURCES sources of MAX_SOURCE_CHARS characters 240 kB.
MAX_BODY_BYTES = 1 << 20
#: At most this many sources in a filter (``source`` repeated, ``filters.sources``), each at most MAX_SOURCE_CHARS.
MAX_SOURCES = 100
MAX_SOURCE_CHARS = 200
#: ``POST /embed``: at most this many texts a request, each at most MAX_QUERY_CHARS characters (the encoder reads
#: its first ``max_length`` tokens of each).
MAX_EMBED_TEXTS = 64
Mode = Literal["bm25", "rerank", "dense", "hybrid", "hybrid_rerank"]
#: The modes the page offers (the API takes every :data:`Mode`).
PAGE_MODES: tuple[str, ...] = ("bm25", "rerank", "hybrid")


class ParamError(ValueError, EsBiomedError):
    """A request parameter is invalid; answered with ``status`` and a body naming ``param``."""

    def __init__(self, param: str, message: str, status: int = 422) -> None:
        self.param = param
        self.message = message
        self.status = status
        super().__init__(f"{param}: {message}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.param, self.message, self.status))

    def to_dict(self, loc: tuple[str, ...] = ()) -> dict[str, Any]:
        return {
            "param": self.param,
            "message": str(self),
            "detail": [{"loc": [*loc, self.param], "msg": self.message, "type": "value_error"}],
        }


# ------------------------------------------------------------------------------------------------- requests
class FiltersBody(BaseModel):
    """Non-scoring filters of a :class:`PlanBody`."""

    model_config = ConfigDict(extra="forbid")

    sources: list[Annotated[str, StringConstraints(max_length=MAX_SOURCE_CHARS)]] = Field(
        default_factory=list,
        max_length=MAX_SOURCES,
        description=f"Keep documents of these sources (at most {MAX_SOURCES}, each at most {MAX_SOURCE_CHARS} characters).",
    )
    year_from: int | None = Field(
        None, ge=MIN_YEAR, le=MAX_YEAR, description=f"First publication year kept ({MIN_YEAR} to {MAX_YEAR})."
    )
    year_to: int | None = Field(
        None, ge=MIN_YEAR, le=MAX_YEAR, description=f"Last publication year kept ({MIN_YEAR} to {MAX_YEAR})."
    )


class PlanBody(BaseModel):
    """A :class:`~es_biomed.query.plan.SearchPlan` as JSON (``POST /search``). Unset fields take the tuned
    preset (``es_biomed/query/presets.json``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"query": "aspirin and stroke", "mode": "rerank", "k": 10}]},
    )

    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description=(
            f"The query: at most {MAX_QUERY_CHARS} characters and {MAX_QUERY_CLAUSES} term clauses (its words, stop "
            "words included, times the fields searched)."
        ),
    )
    fields: dict[Literal["title", "abstract", "body"], float] | None = Field(
        None, description=f"Field boosts, each a positive number up to {MAX_WEIGHT:,.0f}."
    )
    match_type: Literal["best_fields", "most_fields"] | None = None
    filters: FiltersBody | None = None
    k: int = Field(10, ge=1, le=MAX_K)
    window_size: int | None = Field(None, ge=1, le=MAX_RESCORE_WINDOW)
    query_weight: float | None = Field(
        None,
        ge=-MAX_WEIGHT,
        le=MAX_WEIGHT,
        allow_inf_nan=False,
        description=f"Weight of the BM25 score (a finite number, at most {MAX_WEIGHT:,.0f} in magnitude).",
    )
    rescore_query_weight: float | None = Field(
        None,
        ge=-MAX_WEIGHT,
        le=MAX_WEIGHT,
        allow_inf_nan=False,
        description=f"Weight of cosine + 1 (a finite number, at most {MAX_WEIGHT:,.0f} in magnitude).",
    )
    score_mode: Literal["total", "multiply", "avg", "max", "min"] | None = None
    mode: Mode = "rerank"
    rank_constant: int | None = Field(None, ge=1, le=MAX_RANK_CONSTANT)


# ------------------------------------------------------------------------------------------------ responses
class ScoreParts(BaseModel):
    """How a hit's score was made: its BM25 first-pass score, its cosine with the query (best passage), its RRF
    score (hybrid modes) and the final score it is ranked by. A part that was not computed is ``null``."""

    bm25: float | None = None
    cosine: float | None = None
    rrf: float | None = None
    final: float


class SnippetOut(BaseModel):
    """Plain text of one field and the ``[start, end)`` ranges of its matching words (never markup)."""

    field: str
    text: str
    highlights: list[tuple[int, int]]


class HitOut(BaseModel):
    rank: int
    doc_id: str
    title: str
    title_highlights: list[tuple[int, int]]
    year: int | None
    source: str
    journal: str
    doi: str
    pmid: str
    doi_url: str | None
    pubmed_url: str | None
    snippet: SnippetOut
    scores: ScoreParts


class SearchResponse(BaseModel):
    query: str
    mode: Mode
    k: int
    window_size: int
    filters: FiltersBody
    took_ms: float
    hits: list[HitOut]


class AnswerOut(BaseModel):
    """One extracted answer and its evidence (``es_biomed.qa.Answer.to_dict()``)."""

    model_config = ConfigDict(extra="allow")

    text: str
    score: float
    doc_id: str
    title: str | None = None
    year: int | None = None
    sentence: str | None = None
    start: int | None = None
    end: int | None = None
    field: str | None = None


class AskResponse(BaseModel):
    question: str
    took_ms: float
    answers: list[AnswerOut]


class EmbedBody(BaseModel):
    """Texts to embed with the index's encoder (``query``: with its query prefix, as a search does)."""

    model_config = ConfigDict(extra="forbid")

    texts: list[
        Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"\S")]
    ] = Field(
        ...,
        min_length=1,
        max_length=MAX_EMBED_TEXTS,
        description=(
            f"1 to {MAX_EMBED_TEXTS} texts, each a string of 1 to {MAX_QUERY_CHARS} characters, not only spaces."
        ),
    )
    kind: Literal["query", "document"] = Field(
        "query", description="query: as a search embeds its query; document: as the index embedded documents."
    )


class EmbedResponse(BaseModel):
    encoder: dict[str, Any]
    kind: Literal["query", "document"]
    dims: int
    vectors: list[list[float]]
    took_ms: float


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    index: dict[str, Any]
    encoder: dict[str, Any]
    qa: dict[str, Any]


class ErrorResponse(BaseModel):
    param: str
    message: str
    detail: list[dict[str, Any]]


# ---------------------------------------------------------------------------------------------- validation
def _check_query(param: str, q: str | None) -> str:
    if q is None or not q.strip():
        raise ParamError(param, "must not be empty")
    if len(q) > MAX_QUERY_CHARS:
        raise ParamError(param, f"must be at most {MAX_QUERY_CHARS} characters, got {len(q)}")
    return q


def check_question(q: str | None) -> str:
    """The ``q`` of ``/ask``, checked like a search query."""
    return _check_query("q", q)


def _check_k(param: str, k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise ParamError(param, f"must be between 1 and {MAX_K}, got {k}")


def _check_sources(param: str, sources: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The non-empty sources, at most :data:`MAX_SOURCES` of at most :data:`MAX_SOURCE_CHARS` characters."""
    sources = sources or ()
    if len(sources) > MAX_SOURCES:
        raise ParamError(param, f"must name at most {MAX_SOURCES} sources, got {len(sources)}")
    for s in sources:
        if len(s) > MAX_SOURCE_CHARS:
            raise ParamError(param, f"each source must be at most {MAX_SOURCE_CHARS} characters, got {len(s)}")
    return tuple(s for s in sources if s)


def _check_years(year_from: int | None, year_to: int | None, prefix: str = "") -> None:
    for name, year in (("year_from", year_from), ("year_to", year_to)):
        if year is not None and not MIN_YEAR <= year <= MAX_YEAR:
            raise ParamError(f"{prefix}{name}", f"must be a year from {MIN_YEAR} to {MAX_YEAR}, got {year}")
    if year_from is not None and year_to is not None and year_from > year_to:
        raise ParamError(f"{prefix}year_from", f"is after {prefix}year_to ({year_from} > {year_to})")


def _check_weight(param: str, val: float | None) -> None:
    if val is not None and not math.isfinite(val):
        raise ParamError(param, f"must be a finite number, got {val!r}")
    if val is not None and abs(val) > MAX_WEIGHT:
        raise ParamError(param, f"must be between -{MAX_WEIGHT:,.0f} and {MAX_WEIGHT:,.0f}, got {val!r}")


def _hybrid_window(overrides: dict[str, Any], window_param: str, given: int | None) -> None:
    """Hybrid modes return at most ``window_size`` hits: a window left unset grows to k, a given one must not
    be smaller than k."""
    if overrides["mode"] not in ("hybrid", "hybrid_rerank"):
        return
    preset = default_plan("").window_size
    if given is None:
        overrides["window_size"] = max(preset, overrides["k"])
    elif given < overrides["k"]:
        raise ParamError(
            window_param, f"must be at least k ({overrides['k']}) in {overrides['mode']} mode, got {given}"
        )


def _build(query: str, overrides: dict[str, Any], query_param: str) -> SearchPlan:
    try:
        return default_plan(query, **overrides)
    except EsBiomedError as exc:  # PlanError: a combination the checks above did not catch, or a query too long
        param = query_param if getattr(exc, "param", None) == "query" else "plan"
        raise ParamError(param, str(exc)) from exc


def plan_from_params(
    q: str | None,
    mode: str = "rerank",
    k: int = 10,
    window: int | None = None,
    sources: list[str] | None = None,
    year_from: int | None = None,
    year_to: int | None = None,
) -> SearchPlan:
    """The plan of ``GET /search``; the tuned preset fills what is not given.

    Raises:
        ParamError: names the bad parameter (``q``, also for a query of more than
            :data:`~es_biomed.query.plan.MAX_QUERY_CLAUSES` term clauses, ``mode``, ``k``, ``window``, ``source``,
            ``year_from``, ``year_to``).

    Example:
        >>> plan_from_params("aspirin", mode="bm25", k=5).k
        5
    """
    query = _check_query("q", q)
    if mode not in Mode.__args__:  # type: ignore[attr-defined]
        raise ParamError("mode", f"must be one of {', '.join(Mode.__args__)}, got {mode!r}")  # type: ignore[attr-defined]
    _check_k("k", k)
    if window is not None and not 1 <= window <= MAX_RESCORE_WINDOW:
        raise ParamError("window", f"must be between 1 and {MAX_RESCORE_WINDOW}, got {window}")
    _check_years(year_from, year_to)
    overrides: dict[str, Any] = {"k": k, "mode": mode}
    if window is not None:
        overrides["window_size"] = window
    _hybrid_window(overrides, "window", window)
    srcs = _check_sources("source", sources)
    if srcs or year_from is not None or year_to is not None:
        overrides["filters"] = Filters(srcs, year_from, year_to)
    return _build(query, overrides, "q")


def plan_from_body(body: PlanBody) -> SearchPlan:
    """The plan of ``POST /search``: the fields set in ``body`` over the tuned preset.

    Raises:
        ParamError: names the bad field (``query``, ``k``, ``window_size``, ``filters.year_from``...).
    """
    _check_query("query", body.query)
    _check_weight("query_weight", body.query_weight)
    _check_weight("rescore_query_weight", body.rescore_query_weight)
    overrides: dict[str, Any] = {"k": body.k, "mode": body.mode}
    for name in ("match_type", "window_size", "query_weight", "rescore_query_weight", "score_mode", "rank_constant"):
        val = getattr(body, name)
        if val is not None:
            overrides[name] = val
    if body.fields is not None:
        if not body.fields:
            raise ParamError("fields", "must name at least one field")
        for name, boost in body.fields.items():
            if not (math.isfinite(boost) and 0 < boost <= MAX_WEIGHT):
                raise ParamError(
                    f"fields.{name}", f"boost must be a positive number up to {MAX_WEIGHT:,.0f}, got {boost!r}"
                )
        overrides["fields"] = tuple(body.fields.items())
    if body.filters is not None:
        f = body.filters
        _check_years(f.year_from, f.year_to, prefix="filters.")
        overrides["filters"] = Filters(_check_sources("filters.sources", f.sources), f.year_from, f.year_to)
    _hybrid_window(overrides, "window_size", body.window_size)
    return _build(body.query, overrides, "query")
