"""The admission gate: refuse analysis requests beyond a fixed number in flight, before reading their body.

The engine bounds the articles waiting for the model, but a request it refuses has already been read, parsed,
validated and tokenised. Under a flood that work alone can saturate the event loop, and the latency of the
requests that were accepted grows with it. This gate counts analysis requests in flight and answers the
excess at once with a pre-built 503, for a few microseconds each (as TEI's `max_concurrent_requests` does).
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from models.errors import OverloadedError

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
