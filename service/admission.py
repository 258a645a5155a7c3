"""Admission: refuse what the service will not take before reading it — analysis requests beyond a fixed
number in flight (`AdmissionGate`), and bodies over a size limit (`BodySizeLimit`).

The engine bounds the articles waiting for the model, but a request it refuses has already been read, parsed,
validated and tokenised. Under a flood that work alone can saturate the event loop, and the latency of the
requests that were accepted grows with it. This gate counts analysis requests in flight and answers the
excess at once with a pre-built 503, for a few microseconds each (as TEI's `max_concurrent_requests` does).
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from naba.models.errors import OverloadedError
from naba.service.errors import BODY_TOO_LARGE_ERROR_TYPE

GATED_PREFIX = "/v1/analyze"
_BODY = json.dumps(
    {
        "error": "the server is at its limit of requests in flight; retry shortly",
        "error_type": OverloadedError.error_type,
    }
).encode()
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BODY)).encode()),
    (b"retry-after", b"1"),
]


class AdmissionGate:
    """ASGI middleware holding at most `max_in_flight` analysis requests; the rest get 503 + Retry-After."""

    def __init__(self, app: ASGIApp, max_in_flight: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0  # only touched on the event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GATED_PREFIX):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            scope.setdefault("state", {})["error_type"] = OverloadedError.error_type
            await send({"type": "http.response.start", "status": 503, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": _BODY})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class BodySizeLimit:
    """ASGI middleware refusing request bodies over `max_bytes` with 413 and the common error body.

    A declared `Content-Length` over the limit is refused at once, unread. A body without one (chunked) is
    counted as it streams in, and the request fails with the same 413 as soon as it passes the limit, so an
    endless body never fills memory. (FastAPI's own `max_body_size` answers a declared oversize in plain
    text, replacing any error body, so it is not used.)
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = f"request body is larger than {max_bytes} bytes (NABA_MAX_BODY_BYTES)"
        body = json.dumps({"error": self.message, "error_type": BODY_TOO_LARGE_ERROR_TYPE}).encode()
        self.body = body
        self.headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            scope.setdefault("state", {})["error_type"] = BODY_TOO_LARGE_ERROR_TYPE
            await send({"type": "http.response.start", "status": 413, "headers": self.headers})
            await send({"type": "http.response.body", "body": self.body})
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body; the service's handler
                    # for it writes the common error body.
                    raise HTTPException(413, self.message)
            return message

        await self.app(scope, counted, send)
