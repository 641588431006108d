"""The engine-neutral search plan (BM25 + cosine rescore, dense, hybrid) and its semantics."""

from es_biomed.query.plan import (
    SCORE_MODES,
    Filters,
    SearchPlan,
    apply_rescore,
    combine_scores,
    reciprocal_rank_fusion,
)

__all__ = ["SCORE_MODES", "Filters", "SearchPlan", "apply_rescore", "combine_scores", "reciprocal_rank_fusion"]
