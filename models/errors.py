"""Typed errors shared by the predictor, the batch script, training and the service.

Each class says what went wrong in words a caller can act on; the HTTP status for each lives in one table in
`service/errors.py`, so nothing below the service knows about HTTP.
"""

from __future__ import annotations


class NabaError(Exception):
    """Base class: every error Naba raises on purpose."""

    error_type = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(NabaError):
    """The article cannot be analysed as given (empty, no Arabic letters, malformed)."""

    error_type = "invalid_input"


class EmptyInputError(InvalidInputError):
    """The article text is empty or only whitespace."""

    error_type = "empty_input"


class InputTooLongError(NabaError):
    """The article is longer than the configured character limit."""

    error_type = "input_too_long"


class BatchTooLargeError(NabaError):
    """A batch request holds more articles than the configured limit."""

    error_type = "batch_too_large"


class OverloadedError(NabaError):
    """The request queue is full: the caller should retry after `retry_after` seconds."""

    error_type = "overloaded"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimeoutError(NabaError):
    """A request waited and ran longer than the configured timeout."""

    error_type = "timeout"


class ModelNotReadyError(NabaError):
    """No model is loaded yet, or it has not answered its warm-up."""

    error_type = "model_not_ready"


class ArtifactError(NabaError):
    """A model artifact is missing, incomplete, unsafe or inconsistent."""

    error_type = "artifact_error"


class DataError(NabaError):
    """A data file is malformed; the message names the file and line."""

    error_type = "data_error"

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        where = f"{path}:{line}: " if path is not None and line is not None else f"{path}: " if path else ""
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line
