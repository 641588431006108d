"""The HTTP API: ``/search`` (GET and POST), ``/ask``, ``/embed``, ``/health`` and the page at ``/``.

Handlers are ``async`` and never block the event loop: every search and every answer runs in the worker thread
pool (:func:`starlette.concurrency.run_in_threadpool`). Where batching is on, the query encodings of concurrent
searches share encoder calls through the state's :class:`~es_biomed.serve.batcher.QueryBatcher` (started by the
app's lifespan).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import StringConstraints
from starlette.concurrency import run_in_threadpool

from es_biomed.errors import EsBiomedError, PlanError
from es_biomed.query.plan import MAX_QUERY_CLAUSES, MAX_RESCORE_WINDOW, MAX_YEAR, MIN_YEAR, SearchPlan
from es_biomed.query.results import SearchResults
from es_biomed.search.searcher import Searcher
from es_biomed.serve.batcher import QueryBatcher
from es_biomed.serve.highlight import Highlighter
from es_biomed.serve.results import hits_to_json
from es_biomed.serve.schemas import (
    MAX_BODY_BYTES,
    MAX_K,
    MAX_QUERY_CHARS,
    MAX_SOURCE_CHARS,
    MAX_SOURCES,
    AskResponse,
    EmbedBody,
    EmbedResponse,
    ErrorResponse,
    HealthResponse,
    Mode,
    ParamError,
    PlanBody,
    SearchResponse,
    check_question,
    plan_from_body,
    plan_from_params,
)

__all__ = ["ServeState", "router", "STATIC_DIR", "PAGE_HEADERS"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
#: The page runs only its own script and talks only to this server (an injected ``<script>`` would not run).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body is not JSON in UTF-8 (malformed, nested too deeply...)"},
    413: {"model": ErrorResponse, "description": f"The body is larger than {MAX_BODY_BYTES} bytes (`param`: body)"},
    422: {
        "model": ErrorResponse,
        "description": (
            "A parameter is invalid; `param` names it (`weights` when the weights make the scores overflow)"
        ),
    },
}


@dataclass
class ServeState:
    """What the service loads once at startup: the searcher (with its encoder), the highlighter, the asker, and
    (while the app runs) the batcher of query encodings; without one each search encodes its own query."""

    searcher: Searcher
    highlighter: Highlighter
    asker: Any | None = None
    qa_error: str | None = None
    reader: str | None = None
    index_error: str | None = None
    batcher: QueryBatcher | None = None

    def refresh(self) -> None:
        """Pick up the index's last commit (checked at most once a second), as Elasticsearch's refresh does. A
        store that turned unreadable leaves the last good view serving; ``/health`` says why."""
        try:
            self.searcher.refresh()
            self.index_error = None
        except EsBiomedError as exc:
            if self.index_error != str(exc):
                logger.warning("serve: keeping the last good view of the index: %s", exc)
            self.index_error = str(exc)

    def search(self, plan: SearchPlan) -> dict[str, Any]:
        """Run ``plan`` (blocking: call it from a worker thread) and build the response."""
        self.refresh()
        t0 = time.perf_counter()
        results = self._run(plan)
        f = plan.filters
        hits = hits_to_json(results, plan, self.highlighter)
        _check_finite(hits, plan)
        return {
            "query": plan.query,
            "mode": plan.mode,
            "k": plan.k,
            "window_size": plan.window_size,
            "filters": {"sources": list(f.sources), "year_from": f.year_from, "year_to": f.year_to},
            "hits": hits,
            "took_ms": round((time.perf_counter() - t0) * 1000, 3),
        }

    def _run(self, plan: SearchPlan) -> SearchResults:
        """The searcher's ``run``, with the query vector from the batcher where there is one."""
        searcher, batcher = self.searcher, self.batcher
        if batcher is None or plan.mode == "bm25" or not searcher.is_embedded:
            # without a batcher, concurrent encodes are faster in total than taking turns (measured with 4 and 16
            # clients on 2 cores: 45 vs 30 QPS), as one's tokenization and Python overlap another's ONNX Runtime
            # compute; batching them measured slower still on a CPU (benchmarks/RESULTS.md, issue 23)
            return searcher.run(plan, with_sources=True)
        encoder = searcher.encoder
        if batcher.encoder is not encoder:  # the vector must come from the encoder whose identity is checked
            return searcher.run(plan, with_sources=True)
        if plan.mode == "rerank_ce":
            searcher.cross_encoder_for(plan)  # a missing or broken cross-encoder fails before the query is encoded
        return searcher.execute(plan, batcher.encode(plan.query), with_sources=True, encoder=encoder)

    def embed(self, texts: list[str], kind: str) -> dict[str, Any]:
        """L2-normalised vectors of ``texts`` from the searcher's encoder (the index's identity), in batches of 32."""
        t0 = time.perf_counter()
        enc = self.searcher.encoder
        embed = enc.encode_queries if kind == "query" else enc.encode_documents
        if kind == "query" and len(texts) == 1 and self.batcher is not None and self.batcher.encoder is enc:
            vecs = self.batcher.encode(texts[0])[None, :].astype(np.float32)
        else:
            vecs = np.asarray(embed(texts, batch_size=32), dtype=np.float32)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        info = enc.info.to_dict()
        return {
            "encoder": {**info, "index_encoder": self.searcher.recorded_encoder().get("name")},
            "kind": kind,
            "dims": int(vecs.shape[1]),
            "vectors": vecs.tolist(),
            "took_ms": round((time.perf_counter() - t0) * 1000, 3),
        }

    def ask(self, question: str, k: int, overrides: dict[str, Any] | None) -> dict[str, Any]:
        self.refresh()
        t0 = time.perf_counter()
        answers = self.asker.ask(question, k=k, plan_overrides=overrides)  # type: ignore[union-attr]
        return {
            "question": question,
            "answers": [a.to_dict() for a in answers],
            "took_ms": round((time.perf_counter() - t0) * 1000, 3),
        }


def _check_finite(hits: list[dict[str, Any]], plan: SearchPlan) -> None:
    """A safety net behind the weight limits: a score that is not a finite number would be ``null`` in the JSON."""
    for hit in hits:
        if not all(v is None or math.isfinite(v) for v in hit["scores"].values()) or hit["scores"]["final"] is None:
            raise ParamError(
                "weights",
                f"the scores are not finite numbers with query_weight {plan.query_weight!r}, rescore_query_weight "
                f"{plan.rescore_query_weight!r} and field boosts {dict(plan.fields)!r}; use smaller weights",
            )


def get_state(request: Request) -> ServeState:
    return request.app.state.serve  # type: ignore[no-any-return]


State = Annotated[ServeState, Depends(get_state)]
router = APIRouter()


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/search", response_model=SearchResponse, responses=ERRORS, tags=["search"])
async def search_get(
    state: State,
    q: Annotated[
        str,
        Query(
            max_length=MAX_QUERY_CHARS,
            description=(
                f"The query (not empty; at most {MAX_QUERY_CHARS} characters, and at most {MAX_QUERY_CLAUSES} "
                "term clauses: its words, stop words included, times the fields searched)."
            ),
        ),
    ],
    mode: Annotated[Mode, Query(description="Search mode.")] = "rerank",
    k: Annotated[int, Query(ge=1, le=MAX_K, description="Number of hits.")] = 10,
    window: Annotated[
        int | None, Query(ge=1, le=MAX_RESCORE_WINDOW, description="Rescore window (default: the tuned preset).")
    ] = None,
    source: Annotated[
        list[Annotated[str, StringConstraints(max_length=MAX_SOURCE_CHARS)]],
        Query(
            max_length=MAX_SOURCES,
            description=(
                f"Keep only these sources (repeat the parameter; at most {MAX_SOURCES}, each at most "
                f"{MAX_SOURCE_CHARS} characters)."
            ),
        ),
    ] = [],  # noqa: B006
    year_from: Annotated[
        int | None,
        Query(ge=MIN_YEAR, le=MAX_YEAR, description=f"First publication year kept ({MIN_YEAR} to {MAX_YEAR})."),
    ] = None,
    year_to: Annotated[
        int | None,
        Query(ge=MIN_YEAR, le=MAX_YEAR, description=f"Last publication year kept ({MIN_YEAR} to {MAX_YEAR})."),
    ] = None,
) -> dict[str, Any]:
    """Search the index: BM25, BM25 + cosine rerank, dense kNN or hybrid RRF. Each hit carries its stored
    fields, DOI and PubMed links, a snippet with highlight ranges and its score parts."""
    plan = plan_from_params(q, mode, k, window, source, year_from, year_to)
    return await run_in_threadpool(state.search, plan)


@router.post("/search", response_model=SearchResponse, responses=ERRORS, tags=["search"])
async def search_post(state: State, body: PlanBody) -> dict[str, Any]:
    """Search with a JSON :class:`SearchPlan` (fields, weights, score mode, filters...); unset fields take the
    tuned preset."""
    plan = plan_from_body(body)
    return await run_in_threadpool(state.search, plan)


@router.get(
    "/ask",
    response_model=AskResponse,
    responses={**ERRORS, 503: {"model": ErrorResponse, "description": "Question answering is not available"}},
    tags=["qa"],
)
async def ask(
    state: State,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description="The question (not empty).")],
    k: Annotated[int, Query(ge=1, le=50, description="Number of answers.")] = 5,
    mode: Annotated[Mode | None, Query(description="Search mode of the retrieval (default: rerank).")] = None,
) -> Any:
    """Answer a question: the search finds passages and the extractive QA model points at the answers in them.
    Each answer carries its score and evidence (document, title, year, sentence, character offsets)."""
    question = check_question(q)
    if state.asker is None:
        return JSONResponse(
            status_code=503,
            content={
                "param": "qa",
                "message": f"question answering is not available: {state.qa_error}",
                "detail": [],
            },
        )
    overrides = {"mode": mode} if mode else None
    try:
        return await run_in_threadpool(state.ask, question, k, overrides)
    except PlanError as exc:  # a question too long, or e.g. a hybrid window smaller than the passages it fetches
        raise ParamError("q" if exc.param == "query" else "mode", str(exc)) from exc
    except ValueError as exc:  # es_biomed.qa's QaParameterError names its parameter ("question" is our q)
        if not isinstance(exc, EsBiomedError) or not hasattr(exc, "param"):
            raise
        param = {"question": "q"}.get(exc.param, exc.param)
        raise ParamError(param, str(getattr(exc, "reason", exc))) from exc


@router.post("/embed", response_model=EmbedResponse, responses=ERRORS, tags=["search"])
async def embed(state: State, body: EmbedBody) -> dict[str, Any]:
    """Embed texts with the encoder the index was built with (its name, fingerprint and dims come back), so that
    any client, in any language, can call the stored ``es-biomed-rescore`` template (its ``query_vector``) or a kNN
    search with vectors of the same identity. ``kind=query`` embeds as a search does (the query prefix, if the
    encoder has one); ``document`` as indexing does."""
    return await run_in_threadpool(state.embed, body.texts, body.kind)


@router.get("/health", response_model=HealthResponse, tags=["service"])
async def health(state: State) -> dict[str, Any]:
    """The index (path, document count, sources, years) and the encoder's identity."""
    index = state.searcher.index
    enc = state.searcher.encoder.info.to_dict()
    recorded = index.encoder_info
    await run_in_threadpool(state.refresh)
    return {
        "status": "ok" if state.index_error is None else "degraded",
        "index": {
            "path": str(index.path),
            "documents": index.count(),
            "commit": index.commit_seq,
            "error": state.index_error,
            **index.facets(),
            "vector_search": index.vector_search_info() if hasattr(index, "vector_search_info") else None,
        },
        "encoder": {**enc, "index_encoder": recorded.get("name")},
        "qa": {"available": state.asker is not None, "reader": state.reader, "error": state.qa_error},
    }


def param_error_response(exc: ParamError) -> JSONResponse:
    return JSONResponse(status_code=exc.status, content=exc.to_dict())
