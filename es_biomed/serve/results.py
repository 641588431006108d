"""Search results as the service returns them: stored fields, links, a highlighted snippet and the score parts."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from es_biomed.query.plan import SearchPlan
from es_biomed.query.results import SearchResults
from es_biomed.serve.highlight import Highlighter

__all__ = ["doi_url", "pubmed_url", "year_of", "hits_to_json"]

_PMID = re.compile(r"\d{1,10}")
_DOI = re.compile(r"10\.\S+")


def doi_url(doi: str) -> str | None:
    """``https://doi.org/<doi>`` (percent-encoded), or None when ``doi`` does not look like a DOI."""
    doi = doi.strip().removeprefix("https://doi.org/").removeprefix("doi:")
    return f"https://doi.org/{quote(doi, safe='/()._-;:')}" if _DOI.fullmatch(doi) else None


def pubmed_url(pmid: str) -> str | None:
    """``https://pubmed.ncbi.nlm.nih.gov/<pmid>/``, or None when ``pmid`` is not a number."""
    pmid = pmid.strip()
    return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" if _PMID.fullmatch(pmid) else None


def year_of(date: str) -> int | None:
    head = date[:4]
    return int(head) if len(head) == 4 and head.isdigit() else None


def hits_to_json(results: SearchResults, plan: SearchPlan, highlighter: Highlighter) -> list[dict[str, Any]]:
    """One :class:`~es_biomed.serve.schemas.HitOut` dict per hit, best first."""
    terms = highlighter.terms(plan.query)
    out = []
    for rank, hit in enumerate(results.hits, start=1):
        src = results.sources.get(hit.doc_id, {})
        title = str(src.get("title") or "")
        doi, pmid = str(src.get("doi") or ""), str(src.get("pmid") or "")
        snippet = highlighter.snippet(
            [("abstract", str(src.get("abstract") or "")), ("body", str(src.get("body") or ""))], terms
        )
        parts = results.parts.get(hit.doc_id, {})
        out.append(
            {
                "rank": rank,
                "doc_id": hit.doc_id,
                "title": title,
                "title_highlights": highlighter.ranges(title, terms),
                "year": year_of(str(src.get("date") or "")),
                "source": str(src.get("source") or ""),
                "journal": str(src.get("journal") or ""),
                "doi": doi,
                "pmid": pmid,
                "doi_url": doi_url(doi) if doi else None,
                "pubmed_url": pubmed_url(pmid) if pmid else None,
                "snippet": snippet.to_dict(),
                "scores": {
                    "bm25": parts.get("bm25"),
                    "cosine": parts.get("cosine"),
                    "rrf": parts.get("rrf"),
                    "final": hit.score,
                },
            }
        )
    return out
