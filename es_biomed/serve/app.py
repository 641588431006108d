"""The ASGI application: :func:`create_app` loads the searcher, its encoder and the asker once (lifespan) and
serves the API, the OpenAPI document (``/openapi.json``, ``/docs`` with locally served assets) and the page. Where
batching is on (``batch_wait_ms``), the lifespan also starts the :class:`~es_biomed.serve.batcher.QueryBatcher` that
batches the query encodings of concurrent searches, and closes it at shutdown.

The service has no authentication: it binds 127.0.0.1 by default and belongs behind a proxy that
authenticates when it is exposed to others.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from es_biomed.search.searcher import Searcher
from es_biomed.serve.batcher import DEFAULT_MAX_BATCH, BatcherClosedError, QueryBatcher
from es_biomed.serve.body_limit import BodyLimit, BodyTooLargeError, body_too_large_response
from es_biomed.serve.highlight import Highlighter
from es_biomed.serve.routes import PAGE_HEADERS, STATIC_DIR, ServeState, param_error_response, router
from es_biomed.serve.schemas import MAX_BODY_BYTES, ParamError

__all__ = ["create_app", "load_state", "DEFAULT_READER", "DEFAULT_PASSAGES"]

logger = logging.getLogger(__name__)

DEFAULT_READER = "biomed-qa"
DEFAULT_PASSAGES = 20


def load_state(
    index: str | os.PathLike[str],
    encoder: str | None = None,
    qa: bool = True,
    reader: str = DEFAULT_READER,
    passages: int = DEFAULT_PASSAGES,
    exact: bool = False,
) -> ServeState:
    """Open the index, load its query encoder (one warm-up query) and, where :mod:`es_biomed.qa` is installed,
    the asker. A QA model that cannot be loaded leaves ``/ask`` answering 503 with the reason; the search
    still serves."""
    from es_biomed.backends.embedded.index import EmbeddedIndex

    searcher = Searcher(EmbeddedIndex(index, vector_search="exact" if exact else "auto"), encoder)
    searcher.encoder.encode_queries(["warm up"])
    state = ServeState(searcher=searcher, highlighter=Highlighter(searcher.index.analyze))
    if not qa:
        state.qa_error = "disabled (--no-qa)"
        return state
    try:
        from es_biomed.qa import Asker
    except ImportError as exc:
        state.qa_error = f"es_biomed.qa cannot be imported ({exc})"
        logger.warning("serve: /ask disabled: %s", state.qa_error)
        return state
    try:
        state.asker = Asker(searcher, reader=reader, passages=passages)
        state.reader = reader
    except Exception as exc:  # noqa: BLE001 - any load failure of the optional reader disables /ask, with its reason
        state.qa_error = f"reader {reader!r} could not be loaded: {type(exc).__name__}: {exc}"
        logger.warning("serve: /ask disabled: %s", state.qa_error)
    return state


def _param_of(loc: list[Any]) -> str:
    """``["query", "k"]`` -> ``k``; ``["body", "filters", "year_from"]`` -> ``filters.year_from``."""
    rest = (
        [p for p in loc[1:] if not isinstance(p, int) and p != "[key]"] if loc and loc[0] in ("query", "body") else loc
    )
    return ".".join(str(p) for p in rest) or (str(loc[0]) if loc else "request")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    detail = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in jsonable_encoder(raw, exclude={"input"})]
    first = detail[0] if detail else {"loc": ["request"], "msg": "invalid request", "type": "value_error"}
    if first.get("type") == "json_invalid":
        why = (raw[0].get("ctx") or {}).get("error") or first.get("msg")
        message = f"body: malformed JSON: {why}"
        return JSONResponse(status_code=400, content={"param": "body", "message": message, "detail": detail})
    param = _param_of(list(first.get("loc", [])))
    return JSONResponse(
        status_code=422, content={"param": param, "message": f"{param}: {first.get('msg')}", "detail": detail}
    )


def _body_error(message: str) -> JSONResponse:
    detail = [{"type": "json_invalid", "loc": ["body"], "msg": message}]
    return JSONResponse(status_code=400, content={"param": "body", "message": f"body: {message}", "detail": detail})


def _unparsable_body(cause: BaseException) -> str:
    """Why FastAPI could not read a JSON body (it says only "There was an error parsing the body")."""
    if isinstance(cause, UnicodeDecodeError):
        return f"is not UTF-8 (byte 0x{cause.object[cause.start]:02x} at position {cause.start}); send JSON in UTF-8"
    if isinstance(cause, RecursionError):
        return "malformed JSON: nested too deeply"
    return f"malformed JSON: {str(cause).split(';')[0] or type(cause).__name__}"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """A body FastAPI could not parse (it raises a bare 400 from the parse error) gets the documented error shape;
    other HTTP errors (404, 405...) keep FastAPI's."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.__cause__ is not None:
        return _body_error(_unparsable_body(exc.__cause__))
    return await http_exception_handler(request, exc)


async def _param_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ParamError)
    return param_error_response(exc)


async def _shutting_down(request: Request, exc: Exception) -> JSONResponse:
    """A search caught by the shutdown (its query waited in the closed batcher): 503, send it again later."""
    return JSONResponse(status_code=503, content={"param": "service", "message": str(exc), "detail": []})


def create_app(
    index: str | os.PathLike[str] | None = None,
    *,
    encoder: str | None = None,
    qa: bool = True,
    reader: str = DEFAULT_READER,
    passages: int = DEFAULT_PASSAGES,
    state: ServeState | None = None,
    batch_wait_ms: float = 0.0,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> FastAPI:
    """The ASGI app for the embedded index at ``index`` (loaded at startup), or over a ready ``state``.

    Args:
        batch_wait_ms: Above 0, while the app runs (its lifespan), concurrent searches share query encoder calls,
            and under load a batch waits at most this long for more queries (a lone query on an idle service never
            waits; :data:`~es_biomed.serve.batcher.DEFAULT_MAX_WAIT_MS` is a good value). ``0`` (the default)
            encodes each query on its own, in its request's thread: on a CPU that is faster (see
            :mod:`es_biomed.serve.batcher`).
        max_batch: The most queries in one encoder call.

    Example:
        >>> import uvicorn                                                      # doctest: +SKIP
        >>> uvicorn.run(create_app("indexes/scifact-sample"), host="127.0.0.1", port=8080)  # doctest: +SKIP
    """
    if index is None and state is None:
        raise ValueError("create_app needs an index path or a ServeState")
    if batch_wait_ms < 0:
        raise ValueError(f"batch_wait_ms: must be >= 0 (0 disables batching), got {batch_wait_ms!r}")
    from fastapi_offline import FastAPIOffline

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        serve = state
        if serve is None:
            assert index is not None  # checked by create_app
            serve = await run_in_threadpool(load_state, index, encoder, qa, reader, passages)
        app.state.serve = serve
        batcher = None
        if batch_wait_ms > 0:
            query_encoder = await run_in_threadpool(lambda: serve.searcher.encoder)
            batcher = serve.batcher = QueryBatcher(query_encoder, max_wait_ms=batch_wait_ms, max_batch=max_batch)
        try:
            yield
        finally:
            if batcher is not None:
                if serve.batcher is batcher:
                    serve.batcher = None
                await run_in_threadpool(batcher.close)

    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("es-biomed")
    except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        ver = "0"
    app = FastAPIOffline(
        title="es-biomed",
        version=ver,
        description=(
            "Biomedical literature search (BM25, cosine rerank, hybrid) and extractive answers. "
            "**No authentication**: keep it on 127.0.0.1 or behind an authenticating proxy. "
            f"Request bodies are limited to {MAX_BODY_BYTES} bytes (413 beyond). Errors are JSON "
            "`{param, message, detail}` naming the parameter."
        ),
        redoc_url=None,
        lifespan=lifespan,
    )
    if state is not None:  # ready now, also for clients that do not run the lifespan (httpx's ASGITransport)
        app.state.serve = state
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ParamError, _param_error)
    app.add_exception_handler(BatcherClosedError, _shutting_down)
    app.add_exception_handler(BodyTooLargeError, body_too_large_response)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.include_router(router)
    app.mount("/static", _PageFiles(directory=STATIC_DIR), name="static")
    return app


class _PageFiles(StaticFiles):
    """The page's assets, with the page's security headers."""

    async def get_response(self, path: str, scope: Any) -> Any:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response
