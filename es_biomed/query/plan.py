"""The engine-neutral search plan and its scoring semantics.

:class:`SearchPlan` describes a search the way Elasticsearch's ``_search`` does: a BM25 ``multi_match``
over weighted fields with filters, optionally followed by a ``rescore`` whose ``script_score`` is
``cosineSimilarity(query_vector, field) + 1.0``. The embedded engine executes it with
:func:`apply_rescore` / :func:`reciprocal_rank_fusion`; the Elasticsearch backend compiles the same plan
to JSON.

Rescore semantics (Elasticsearch ``QueryRescorer``):

* the top ``window_size`` first-pass hits are rescored; with ``p = query_weight * bm25`` and
  ``r = rescore_query_weight * (cosine + 1.0)`` the new score is ``total: p + r``, ``multiply: p * r``,
  ``avg: (p + r) / 2``, ``max: max(p, r)``, ``min: min(p, r)``;
* a window hit the rescore query does not match (no vector) scores ``p``;
* a hit below the window is not rescored and scores ``p``;
* then all hits are sorted by score again (ES ``QueryRescorer.combine``: "splice back to non-topN hits and
  resort all of them"); ties keep first-pass order.

Hits below the window therefore keep their BM25 order among themselves. With ``total`` (the default),
``max`` and non-negative weights they also always stay after the window, because ``cosine + 1.0 >= 0``
makes every window score at least its own ``p``. With ``multiply``, ``avg`` or ``min`` a window hit can drop
below hits outside the window, exactly as in Elasticsearch.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from es_biomed.errors import PlanError
from es_biomed.query.analysis import count_query_terms

__all__ = [
    "ScoreMode",
    "SearchMode",
    "SEARCH_MODES",
    "MatchType",
    "Filters",
    "SearchPlan",
    "SCORE_MODES",
    "combine_scores",
    "apply_rescore",
    "reciprocal_rank_fusion",
    "DEFAULT_FIELDS",
    "MIN_YEAR",
    "MAX_YEAR",
    "MAX_WEIGHT",
    "MAX_RANK_CONSTANT",
    "MAX_QUERY_CLAUSES",
    "LUCENE_MAX_CLAUSES",
    "query_clauses",
]

ScoreMode = Literal["total", "multiply", "avg", "max", "min"]
SearchMode = Literal["bm25", "rerank", "dense", "hybrid", "hybrid_rerank", "rerank_ce"]
SEARCH_MODES: tuple[SearchMode, ...] = ("bm25", "rerank", "dense", "hybrid", "hybrid_rerank", "rerank_ce")
MatchType = Literal["best_fields", "most_fields"]
SCORE_MODES: tuple[ScoreMode, ...] = ("total", "multiply", "avg", "max", "min")
#: Default field boosts (title counts a little more; measured on SciFact train, see README).
DEFAULT_FIELDS: tuple[tuple[str, float], ...] = (("title", 1.0), ("abstract", 1.0), ("body", 1.0))
_FIELDS_ALLOWED = ("title", "abstract", "body")
MAX_RESCORE_WINDOW = 10_000  # Elasticsearch's index.max_rescore_window default
#: The publication years a filter may name (``year_from``, ``year_to``): the four-digit years of the ``date`` fields.
#: Beyond them a year is surely a mistake, and one outside a 64-bit integer crashed the embedded engine (tantivy).
MIN_YEAR = 0
MAX_YEAR = 9999
#: Largest magnitude of ``query_weight``, ``rescore_query_weight`` and of a field boost. The tuning grids reach 1,000;
#: far larger weights make no ranking sense and, near 1e308, overflow the scores to infinity.
MAX_WEIGHT = 1e6
#: Largest RRF ``rank_constant``: Elasticsearch reads it as a Java ``int`` (a larger integer made the embedded RRF's
#: ``1 / (rank_constant + rank)`` raise OverflowError).
MAX_RANK_CONSTANT = 2**31 - 1
#: Lucene's default ``maxClauseCount`` (OpenSearch's ``indices.query.bool.max_clause_count``; Elasticsearch 8+
#: derives a larger one from the heap): a search compiling to more term clauses is refused by the cluster.
LUCENE_MAX_CLAUSES = 1024
#: The most term clauses the BM25 query of a plan may compile to (:func:`query_clauses`: its terms times its fields),
#: on every engine alike. It leaves LUCENE_MAX_CLAUSES - MAX_QUERY_CLAUSES = 24 for the filters' clauses (a
#: ``terms`` filter rewrites to at most 17: up to 16 term queries and a doc-values query; a ``range`` to 2).
MAX_QUERY_CLAUSES = 1000


@dataclass(frozen=True)
class Filters:
    """Non-scoring filters: ``source`` in a set, publication year in ``[year_from, year_to]``.

    Raises:
        PlanError: a year that is not an integer from :data:`MIN_YEAR` to :data:`MAX_YEAR` (names the field).
    """

    sources: tuple[str, ...] = ()
    year_from: int | None = None
    year_to: int | None = None

    def __post_init__(self) -> None:
        for name in ("year_from", "year_to"):
            val = getattr(self, name)
            if val is None:
                continue
            if isinstance(val, bool) or not isinstance(val, numbers.Integral):
                raise PlanError(f"{name} must be an integer year, got {val!r}")
            if not MIN_YEAR <= val <= MAX_YEAR:
                raise PlanError(f"{name} must be a year from {MIN_YEAR} to {MAX_YEAR}, got {val}")
            object.__setattr__(self, name, int(val))

    def __bool__(self) -> bool:
        return bool(self.sources) or self.year_from is not None or self.year_to is not None


@dataclass(frozen=True)
class SearchPlan:
    """One search, engine-neutral and immutable; derive variants with :meth:`replace`.

    Args:
        query: The user's text.
        fields: ``(field, boost)`` pairs for the BM25 ``multi_match``.
        match_type: ``best_fields`` (dis_max over fields) or ``most_fields`` (sum over fields).
        filters: Non-scoring filters.
        k: Number of hits returned.
        window_size: How many first-pass hits are rescored (``rescore.window_size``); also the RRF
            ``rank_window_size`` in hybrid mode.
        query_weight: Weight of the first-pass score.
        rescore_query_weight: Weight of ``cosine + 1.0``.
        score_mode: How the two are combined.
        mode: ``bm25`` (no rescore), ``rerank`` (BM25 + cosine rescore), ``dense`` (exact kNN),
            ``hybrid`` (RRF of BM25 and kNN), ``hybrid_rerank`` (RRF, then the cosine rescore over its top
            ``window_size``: Elasticsearch's ``rescorer`` retriever around ``rrf``), ``rerank_ce`` (``rerank``,
            then a cross-encoder re-sorts its top ``ce_window`` hits; see :mod:`es_biomed.query.cross_stage`).
        rank_constant: RRF constant (Elasticsearch default 60).
        vector_field: Name of the document vector field.
        ce_window: ``rerank_ce``: how many of the rescored hits the cross-encoder scores and re-sorts
            (``1 <= ce_window <= window_size``; Elasticsearch's ``text_similarity_reranker`` ``rank_window_size``).
        ce_weight: ``rerank_ce``: weight of the cross-encoder score, in ``[0, 1]``. ``1.0`` sorts by the
            cross-encoder alone; below 1 the min-max normalized cross-encoder and rescore scores are mixed
            (:func:`es_biomed.query.cross_stage.apply_cross_encoder` gives the formula).
        cross_encoder: ``rerank_ce``: the cross-encoder, a registered name or a model directory (its inference
            endpoint in Elasticsearch). Unset, a ``rerank_ce`` search raises :class:`PlanError` naming it.

    Example:
        >>> plan = SearchPlan("BRCA1 breast cancer", k=5, window_size=20)
        >>> plan.replace(mode="bm25").mode
        'bm25'
    """

    query: str
    fields: tuple[tuple[str, float], ...] = DEFAULT_FIELDS
    match_type: MatchType = "best_fields"
    filters: Filters = field(default_factory=Filters)
    k: int = 10
    window_size: int = 50
    query_weight: float = 1.0
    rescore_query_weight: float = 1.0
    score_mode: ScoreMode = "total"
    mode: SearchMode = "rerank"
    rank_constant: int = 60
    vector_field: str = "embedding"
    ce_window: int = 20
    ce_weight: float = 1.0
    cross_encoder: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.fields, Mapping):  # accept a dict for convenience
            object.__setattr__(self, "fields", tuple((str(f), float(b)) for f, b in self.fields.items()))
        if not isinstance(self.query, str):
            raise PlanError(f"query must be a string, got {type(self.query).__name__}")
        if not self.fields:
            raise PlanError("fields must name at least one field")
        for name, boost in self.fields:
            if name not in _FIELDS_ALLOWED:
                raise PlanError(f"unknown field {name!r}; expected one of {_FIELDS_ALLOWED}")
            if not (math.isfinite(boost) and 0 < boost <= MAX_WEIGHT):
                raise PlanError(f"boost of {name!r} must be a positive number up to {MAX_WEIGHT:,.0f}, got {boost!r}")
        if self.match_type not in ("best_fields", "most_fields"):
            raise PlanError(f"match_type must be best_fields or most_fields, got {self.match_type!r}")
        if self.score_mode not in SCORE_MODES:
            raise PlanError(f"score_mode must be one of {SCORE_MODES}, got {self.score_mode!r}")
        if self.mode not in SEARCH_MODES:
            raise PlanError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {self.mode!r}")
        for name in ("k", "window_size", "rank_constant", "ce_window"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise PlanError(f"{name} must be a positive integer, got {val!r}")
        if self.rank_constant > MAX_RANK_CONSTANT:
            raise PlanError(f"rank_constant must be at most {MAX_RANK_CONSTANT}, got {self.rank_constant}")
        if self.mode in ("hybrid", "hybrid_rerank") and self.window_size < self.k:
            raise PlanError(
                f"hybrid search returns at most window_size (rank_window_size) hits: window_size {self.window_size} < k {self.k}"
            )
        if self.window_size > MAX_RESCORE_WINDOW:
            raise PlanError(f"window_size {self.window_size} exceeds index.max_rescore_window ({MAX_RESCORE_WINDOW})")
        for name in ("query_weight", "rescore_query_weight"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val):
                raise PlanError(f"{name} must be a finite number, got {val!r}")
            if abs(val) > MAX_WEIGHT:
                raise PlanError(f"{name} must be between -{MAX_WEIGHT:,.0f} and {MAX_WEIGHT:,.0f}, got {val!r}")
        w = self.ce_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0:
            raise PlanError(f"ce_weight must be a number in [0, 1], got {w!r}")
        if self.cross_encoder is not None and (not isinstance(self.cross_encoder, str) or not self.cross_encoder):
            raise PlanError(f"cross_encoder must be a model name or directory, got {self.cross_encoder!r}")
        if self.mode != "dense" and self.query.strip():  # dense alone never analyzes the query
            nf = len(self.fields)
            terms = query_clauses(self.query)
            clauses = terms * nf
            if clauses > MAX_QUERY_CLAUSES:
                raise PlanError(
                    f"query is too long: its {terms} words (stop words included) over {nf} field(s) make "
                    f"{clauses} term clauses, more than the {MAX_QUERY_CLAUSES} a search may have on any engine "
                    f"(OpenSearch refuses more than its maxClauseCount, {LUCENE_MAX_CLAUSES}); use at most "
                    f"{MAX_QUERY_CLAUSES // nf} words, or fewer fields",
                    param="query",
                )
        if self.mode == "rerank_ce" and self.ce_window > self.window_size:
            raise PlanError(
                f"ce_window {self.ce_window} exceeds window_size {self.window_size}: the cross-encoder re-sorts "
                "the top ce_window hits of the rescore window"
            )

    def replace(self, **changes: object) -> SearchPlan:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def first_pass_size(self) -> int:
        """How many BM25 hits the first pass must fetch."""
        return max(self.k, self.window_size) if self.mode != "bm25" and self.mode != "dense" else self.k


def query_clauses(query: str, n_fields: int = 1) -> int:
    """The term clauses a BM25 query on ``query`` over ``n_fields`` fields compiles to, at most, on every engine:
    :func:`~es_biomed.query.analysis.count_query_terms` (the project's tokenizer, duplicates and stop words
    included: an upper bound of what Elasticsearch's and OpenSearch's ``english`` analyzer keep) times the fields,
    as a ``multi_match`` holds one ``match`` (one clause per term) per field.

    Example:
        >>> query_clauses("aspirin and stroke", 3)
        9
    """
    return count_query_terms(query) * n_fields


def combine_scores(primary: float, secondary: float, score_mode: ScoreMode) -> float:
    """Combine weighted first-pass and rescore scores as Elasticsearch's ``score_mode`` does."""
    if score_mode == "total":
        return primary + secondary
    if score_mode == "multiply":
        return primary * secondary
    if score_mode == "avg":
        return (primary + secondary) / 2.0
    if score_mode == "max":
        return max(primary, secondary)
    if score_mode == "min":
        return min(primary, secondary)
    raise PlanError(f"unknown score_mode {score_mode!r}")


def apply_rescore(
    first_pass: Sequence[tuple[str, float]],
    rescore_scores: Mapping[str, float],
    plan: SearchPlan,
) -> list[tuple[str, float]]:
    """Rescore the top ``plan.window_size`` hits of ``first_pass`` (sorted best first), as Elasticsearch does.

    Args:
        first_pass: ``(doc_id, bm25)`` pairs, best first.
        rescore_scores: The rescore query's score per doc (``cosine + 1.0``); a doc absent here did not
            match the rescore query (it has no vector).
        plan: Supplies ``window_size``, the weights and ``score_mode``.

    Returns:
        All hits with their new scores, sorted by score (ties in first-pass order).

    Example:
        >>> plan = SearchPlan("q", window_size=2, query_weight=1.0, rescore_query_weight=10.0)
        >>> apply_rescore([("a", 3.0), ("b", 2.0), ("c", 1.0)], {"a": 1.0, "b": 1.5, "c": 2.0}, plan)
        [('b', 17.0), ('a', 13.0), ('c', 1.0)]
    """
    qw, rw = plan.query_weight, plan.rescore_query_weight
    scored = []
    for rank, (doc_id, score) in enumerate(first_pass):
        primary = score * qw
        if rank < plan.window_size and doc_id in rescore_scores:
            primary = combine_scores(primary, rescore_scores[doc_id] * rw, plan.score_mode)
        scored.append((primary, rank, doc_id))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [(doc_id, s) for s, _, doc_id in scored]


def reciprocal_rank_fusion(
    rankings: Iterable[Sequence[str]], rank_constant: int = 60, k: int | None = None
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009), as Elasticsearch's ``rrf``.

    ``score(d) = sum over rankings of 1 / (rank_constant + rank(d))`` with 1-based ranks. Ties are broken
    by the best rank in the first ranking that has the doc, then by doc id.

    Example:
        >>> reciprocal_rank_fusion([["a", "b"], ["b", "c"]], rank_constant=1)
        [('b', 0.8333333333333333), ('a', 0.5), ('c', 0.3333333333333333)]
    """
    scores: dict[str, float] = {}
    first_seen: dict[str, tuple[int, int]] = {}
    for r_i, ranking in enumerate(rankings):
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (rank_constant + rank)
            first_seen.setdefault(doc_id, (r_i, rank))
    fused = sorted(scores.items(), key=lambda kv: (-kv[1], first_seen[kv[0]], kv[0]))
    return fused[:k] if k is not None else fused
