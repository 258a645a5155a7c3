"""The error table in `service/errors.py`: each error class gets its status, end to end, in the error body."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from naba.models.errors import (
    ArtifactError,
    BatchTooLargeError,
    DataError,
    EmptyInputError,
    InputTooLongError,
    InvalidInputError,
    ModelNotReadyError,
    NabaError,
    OverloadedError,
    RequestTimeoutError,
)
from naba.service.app import create_app
from naba.service.errors import describe_validation_errors, status_for
from naba.settings import Settings
from tests.service.fakes import ECONOMY_TEXT, RaisingPredictor, wait_until_loaded

TABLE = [
    (InvalidInputError("bad"), 422),
    (EmptyInputError("empty"), 422),
    (InputTooLongError("long"), 413),
    (BatchTooLargeError("many"), 413),
    (ModelNotReadyError("wait"), 503),
    (OverloadedError("busy"), 503),
    (RequestTimeoutError("slow"), 504),
    (ArtifactError("broken artifact"), 500),
    (DataError("bad line", path="x.jsonl", line=3), 500),
    (NabaError("other"), 500),
]
TABLE_IDS = [type(error).__name__ for error, _ in TABLE]


@pytest.mark.parametrize(("error", "status"), TABLE, ids=TABLE_IDS)
def test_status_for_follows_table(error: NabaError, status: int) -> None:
    assert status_for(error) == status


def test_status_for_subclass_inherits_parent_status() -> None:
    class NoTextError(InvalidInputError):
        error_type = "no_text"

    assert status_for(NoTextError("x")) == 422


@pytest.mark.parametrize(("error", "status"), TABLE, ids=TABLE_IDS)
def test_naba_error_from_predictor_maps_to_status(settings: Settings, error: NabaError, status: int) -> None:
    with TestClient(create_app(settings, predictor=RaisingPredictor(error))) as client:
        wait_until_loaded(client)
        response = client.post("/v1/analyze", json={"text": ECONOMY_TEXT})
    assert response.status_code == status
    assert response.json() == {"error": error.message, "error_type": error.error_type}


def test_overloaded_error_says_when_to_retry(settings: Settings) -> None:
    error = OverloadedError("busy", retry_after=7)
    with TestClient(create_app(settings, predictor=RaisingPredictor(error))) as client:
        wait_until_loaded(client)
        response = client.post("/v1/analyze", json={"text": ECONOMY_TEXT})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"


def test_describe_validation_errors_names_fields_as_sent() -> None:
    errors = [
        {
            "loc": ("body", "articles", 3, "text"),
            "msg": "Input should be a valid string",
            "type": "string_type",
        },
        {"loc": ("body",), "msg": "Field required", "type": "missing"},
        {
            "loc": ("body", 9),
            "msg": "JSON decode error",
            "type": "json_invalid",
            "ctx": {"error": "Expecting value"},
        },
    ]
    assert describe_validation_errors(errors) == (
        "articles[3].text: Input should be a valid string; request body: Field required; "
        "request body is not valid JSON: Expecting value"
    )


def test_describe_validation_errors_caps_long_lists() -> None:
    errors = [{"loc": ("body", "articles", i, "text"), "msg": "bad", "type": "x"} for i in range(8)]
    message = describe_validation_errors(errors, limit=2)
    assert message == "articles[0].text: bad; articles[1].text: bad; and 6 more errors"
