"""Evaluation: pytrec_eval metrics, the BEIR protocol and the BioMedBERT BioASQ protocol (Table 9)."""

from es_biomed.eval.metrics import DEFAULT_METRICS, evaluate, per_query

__all__ = ["DEFAULT_METRICS", "evaluate", "per_query"]
