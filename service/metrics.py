"""Prometheus metrics for the service, all named `naba_*`, and the middleware that records requests.

Metric objects live here, in one module, so the engine, the middleware and `/metrics` share them and a reader
sees every series the service exports in one place. They register in prometheus_client's default registry,
which also carries the process and platform collectors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import Counter, Gauge, Histogram

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


async def track_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """HTTP middleware: count each request by route and outcome and time it.

    The error handlers in `service/errors.py` put the error_type in `request.state`, so the outcome label is
    the same string a client sees in the error body. An exception that escapes every handler is counted as
    `internal_error` and re-raised for the server error handler.
    """
    start = time.perf_counter()
    outcome = "internal_error"
    try:
        response = await call_next(request)
        outcome = getattr(request.state, "error_type", None) or (
            "ok" if response.status_code < 400 else f"http_{response.status_code}"
        )
        return response
    finally:
        route = request.scope.get("route")
        label = getattr(route, "path", UNMATCHED_ROUTE)
        REQUESTS.labels(route=label, outcome=outcome).inc()
        REQUEST_DURATION.labels(route=label).observe(time.perf_counter() - start)
