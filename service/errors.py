"""The one table from errors to HTTP statuses, and the handlers that turn every error into the same body.

Every error response is `{"error": <message>, "error_type": <kind>}`: typed `NabaError`s keep their message
and `error_type`, request-validation failures name the offending field, HTTP errors (404, 405) keep their
detail, and anything unexpected becomes a generic 500 whose traceback goes to the log, never to the client.

The errors that only the service raises (authentication, model reloads) are defined here, not in
`models/errors.py`: the predictor, training and the batch script never meet them, and they mean something only
next to an HTTP status.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from naba.models.errors import (
    BatchTooLargeError,
    EmptyInputError,
    InputTooLongError,
    InvalidInputError,
    ModelNotReadyError,
    NabaError,
    OverloadedError,
    RequestTimeoutError,
)
from naba.service.schemas import ErrorResponse

logger = logging.getLogger(__name__)


class UnauthorizedError(NabaError):
    """The request carries no bearer key, or one the service does not know."""

    error_type = "unauthorized"


class ForbiddenError(NabaError):
    """The key is valid but may not use this endpoint, or the endpoint is switched off."""

    error_type = "forbidden"


class ReloadInProgressError(NabaError):
    """Another model reload is still running; only one runs at a time."""

    error_type = "reload_in_progress"


class ReloadFailedError(NabaError):
    """A new model could not be loaded or failed its checks; the previous model keeps serving."""

    error_type = "reload_failed"


class StoreUnavailableError(NabaError):
    """The corrections database cannot be reached or written; nothing was stored."""

    error_type = "store_unavailable"


# Looked up along the exception's class hierarchy, so a new subclass inherits its parent's status; any other
# NabaError is a 500.
STATUS_BY_ERROR: dict[type[NabaError], int] = {
    InvalidInputError: 422,
    EmptyInputError: 422,
    InputTooLongError: 413,
    BatchTooLargeError: 413,
    ModelNotReadyError: 503,
    OverloadedError: 503,
    RequestTimeoutError: 504,
    UnauthorizedError: 401,
    ForbiddenError: 403,
    ReloadInProgressError: 409,
    ReloadFailedError: 422,
    StoreUnavailableError: 503,
}
REQUEST_ERROR_TYPE = "invalid_request"
# A body FastAPI's JSON parsing fails on with something other than a JSONDecodeError gets a bare 400 "error
# parsing the body"; to a client it is invalid JSON like any other, so it gets the same 422, with the reason.
UNPARSABLE_BODY_REASONS: dict[type[Exception], str] = {
    UnicodeDecodeError: "it is not UTF-8 text",
    RecursionError: "it is nested too deeply",
}
BODY_TOO_LARGE_ERROR_TYPE = (
    "body_too_large"  # a 413 for the body's size (`naba.service.admission.BodySizeLimit`)
)
INTERNAL_ERROR_TYPE = "internal_error"


def status_for(exc: NabaError) -> int:
    """The HTTP status for a Naba error: the table entry of its nearest listed class, else 500."""
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def headers_for(exc: NabaError) -> dict[str, str] | None:
    """Headers a client needs to act on an error: when to retry (503), how to authenticate (401)."""
    if isinstance(exc, OverloadedError):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, UnauthorizedError):
        return {"WWW-Authenticate": "Bearer"}
    return None


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: each listed status documented with the error body."""
    return {status: {"model": ErrorResponse, "description": HTTPStatus(status).phrase} for status in statuses}


def error_response(
    request: Request, status: int, message: str, error_type: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Build the error body and note its type on the request, where the metrics middleware reads it."""
    request.state.error_type = error_type
    body = ErrorResponse(error=message, error_type=error_type).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def field_path(loc: Sequence[str | int]) -> str:
    """Name a validation error's location as the client wrote it, e.g. `articles[3].text`."""
    if loc and loc[0] in ("body", "query", "path"):
        if len(loc) == 1:
            return f"request {loc[0]}"
        loc = loc[1:]
    path = ""
    for item in loc:
        path += f"[{item}]" if isinstance(item, int) else f".{item}" if path else str(item)
    return path or "request"


def describe_validation_errors(errors: Sequence[Any], limit: int = 5) -> str:
    """One readable line from pydantic's error list: field and problem for the first `limit` errors."""
    parts = []
    for err in errors[:limit]:
        if err.get("type") == "json_invalid":
            reason = err.get("ctx", {}).get("error", "cannot parse it")
            parts.append(f"request body is not valid JSON: {reason}")
        elif tuple(err.get("loc", ())) == ("body",) and isinstance(err.get("input"), bytes):
            # FastAPI parses a body as JSON only when its Content-Type says so; otherwise the schema meets bytes.
            parts.append("request body must be JSON, sent with 'Content-Type: application/json'")
        else:
            parts.append(f"{field_path(err.get('loc', ()))}: {err.get('msg', 'invalid value')}")
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more errors")
    return "; ".join(parts) or "invalid request"


async def handle_naba_error(request: Request, exc: NabaError) -> JSONResponse:
    """A typed error: its status from the table, its own message and error_type."""
    status = status_for(exc)
    if status == 500:  # 503 (not ready) is an expected state, logged once when loading fails
        logger.error("%s on %s %s: %s", exc.error_type, request.method, request.url.path, exc.message)
    return error_response(request, status, exc.message, exc.error_type, headers_for(exc))


async def handle_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A body that is not JSON, or does not match the schema: 422 naming the field and the problem."""
    return error_response(request, 422, describe_validation_errors(exc.errors()), REQUEST_ERROR_TYPE)


async def handle_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Routing errors (404, 405) and a body over the size limit (413) in the common body, keeping headers such
    as `Allow`; a body that FastAPI could not parse is invalid JSON (422)."""
    if exc.status_code == 400:
        for cause, reason in UNPARSABLE_BODY_REASONS.items():
            if isinstance(exc.__cause__, cause):
                message = f"request body is not valid JSON: {reason}"
                return error_response(request, 422, message, REQUEST_ERROR_TYPE)
    error_type = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    if exc.status_code == 413:
        error_type = BODY_TOO_LARGE_ERROR_TYPE
    return error_response(request, exc.status_code, str(exc.detail), error_type, exc.headers)


async def handle_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: log the traceback, answer a generic 500 that reveals nothing about the internals."""
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "internal server error", INTERNAL_ERROR_TYPE)


def register_error_handlers(app: FastAPI) -> None:
    """Install the handlers above on `app`."""
    # Starlette types every handler as taking a plain `Exception`, though it only calls one with the class it
    # was registered for: a handler narrowed to that class is correct but rejected by the stub.
    app.add_exception_handler(NabaError, handle_naba_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, handle_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, handle_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, handle_unexpected_error)
