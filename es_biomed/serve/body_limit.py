"""A cap on the size of request bodies: an ASGI middleware that answers 413 with the documented error body.

A body announced larger than the cap (``Content-Length``) is refused before a byte of it is read; a body streamed
without a length (chunked) is counted as it arrives and refused as soon as it passes the cap, so the service never
holds more than the cap of it in memory.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from es_biomed.serve.schemas import ParamError

__all__ = ["BodyLimit", "BodyTooLargeError", "body_too_large_response"]


class BodyTooLargeError(HTTPException):
    """The request body passed the cap while it was read.

    It is an ``HTTPException`` so that FastAPI lets it through its body parsing (which turns any other exception into
    a bare 400) to the handler :func:`body_too_large_response`.
    """

    def __init__(self, limit: int, size: int | None = None) -> None:
        self.limit = limit
        self.size = size
        super().__init__(status_code=413, detail=self.error().message)

    def error(self) -> ParamError:
        got = f"got {self.size}" if self.size is not None else "got more than that"
        return ParamError("body", f"must be at most {self.limit} bytes, {got}", status=413)


async def body_too_large_response(request: Request, exc: Exception) -> JSONResponse:
    """``{"param": "body", "message": "body: must be at most N bytes, got M", "detail": [...]}`` with 413."""
    assert isinstance(exc, BodyTooLargeError)
    err = exc.error()
    return JSONResponse(status_code=err.status, content=err.to_dict())


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 (see :func:`body_too_large_response`)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced = _content_length(scope)
        if announced is not None and announced > self.max_bytes:
            await _send_413(BodyTooLargeError(self.max_bytes, announced), scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError as exc:  # read outside a route that has the handler
            if started:
                raise
            await _send_413(exc, scope, receive, send)


async def _send_413(exc: BodyTooLargeError, scope: Scope, receive: Receive, send: Send) -> None:
    err = exc.error()
    response: Any = JSONResponse(status_code=err.status, content=err.to_dict(), headers={"Connection": "close"})
    await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses it; the bytes are counted anyway
    return None
