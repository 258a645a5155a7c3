"""Prometheus metrics for the service, all named `naba_*`, and the middleware that records requests.

Metric objects live here, in one module, so the engine, the middleware and `/metrics` share them and a reader
sees every series the service exports in one place. They register in prometheus_client's default registry,
which also carries the process and platform collectors.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from naba.service.route_table import RouteTable

logger = logging.getLogger(__name__)

# Requests, by route template (never the raw path: unknown paths would blow up the label set).
REQUESTS = Counter(
    "naba_requests",
    "HTTP requests by route and outcome ('ok' or the error_type of the error body).",
    ["route", "outcome"],
)
REQUEST_DURATION = Histogram(
    "naba_request_duration_seconds",
    "Time from receiving a request to sending its response headers.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

# Inference, recorded by the engine's worker around each batch.
INFERENCE_DURATION = Histogram(
    "naba_inference_duration_seconds",
    "Time the model spends on one batch, on the inference thread.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
INFERENCE_BATCH_SIZE = Histogram(
    "naba_inference_batch_size",
    "Articles in one model batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BATCH_TOKENS = Histogram(
    "naba_batch_tokens",
    "Window tokens in one model batch.",
    buckets=(128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768),
)
TOKENS = Counter("naba_tokens", "Window tokens run through the model; rate() gives tokens per second.")
ARTICLES = Counter("naba_articles", "Articles queued for the model.")
QUEUE_DEPTH = Gauge("naba_queue_depth", "Articles waiting for the model.")
QUEUE_WAIT = Histogram(
    "naba_queue_wait_seconds",
    "Time an article waits in the queue before its batch starts.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
MODEL_INFO = Gauge("naba_model_info", "The served model (value 1), by name and version.", ["name", "version"])

UNMATCHED_ROUTE = "unmatched"


class RequestMetricsMiddleware:
    """ASGI middleware: count each request by route and outcome and time it.

    Plain ASGI rather than Starlette's `BaseHTTPMiddleware`, which costs a task and a stream per request: under
    overload that overhead is paid by every refused request too. The error handlers in `service/errors.py`
    put the error_type in the request state, so the outcome label is the string a client sees in the error
    body; an exception that escapes every handler is counted as `internal_error` and re-raised.

    A request refused before the router ran (by the admission gate, the body-size limit or the key check) has
    no route in its scope; `routes` finds the one its path names, so that refusals count under the route they
    were sent to, and only unknown paths under "unmatched".
    """

    def __init__(self, app: ASGIApp, routes: RouteTable | None = None) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        outcome = "internal_error"
        try:
            await self.app(scope, receive, send_and_record)
            error_type = scope.get("state", {}).get("error_type")
            outcome = error_type or ("ok" if status < 400 else f"http_{status}")
        finally:
            label = self._route_label(scope)
            REQUESTS.labels(route=label, outcome=outcome).inc()
            REQUEST_DURATION.labels(route=label).observe(time.perf_counter() - start)

    def _route_label(self, scope: Scope) -> str:
        """The path template of the router's pick, or, for a request answered before routing, of its route."""
        path = getattr(scope.get("route"), "path", None)
        if path is None and self.routes is not None:
            path = self.routes.path(scope)
        return path or UNMATCHED_ROUTE
