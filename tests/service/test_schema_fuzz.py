"""Schemathesis against the app's own OpenAPI schema, in-process over ASGI, with the real tiny model.

Every operation gets generated requests, valid and invalid (schemathesis' positive and negative modes), and
every response must be no 5xx, a documented status, and a body that matches the documented schema. The run is
bounded (at most `MAX_EXAMPLES` fuzzed cases per operation, plus the examples and coverage phases) and
deterministic (fixed seed, derandomised, no example database), so a failure reproduces on the next run.

The first run found that a body which is not UTF-8 gets an undocumented 400 (FastAPI's "error parsing the
body") where the README promises 422 for invalid JSON; `test_body_that_is_not_utf8_gets_422` pins that case.

The requests carry an admin key, so the admin reload route is fuzzed past its auth check: random paths must
come back 422 (or 200 for an empty body, which reloads the configured model), never 500.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from naba.models.predictor import Predictor
from naba.service.app import create_app
from naba.settings import Settings

MAX_EXAMPLES = 50
SEED = 20240601
ADMIN_KEY = "fuzz-admin-key"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

CASES: Counter[str] = Counter()  # cases sent, by operation
STATUSES: Counter[int] = Counter()  # responses, by status


def _wait_ready(app: FastAPI, timeout_s: float = 60.0) -> None:
    """Poll /readyz through schemathesis' own ASGI client (its lifespan is the one that loads the model)."""
    deadline = time.monotonic() + timeout_s
    with asgi.get_client(app) as client:
        while time.monotonic() < deadline:
            if client.get("/readyz").status_code == 200:
                return
            time.sleep(0.05)
    raise AssertionError(f"the model did not load within {timeout_s:g} s")


def fuzz_settings(model_dir: Path) -> Settings:
    """Small limits, so generated texts cross them; an admin key, so the admin route is fuzzed too."""
    return Settings(
        model_dir=model_dir,
        device="cpu",
        max_chars=2000,
        max_batch_articles=4,
        max_summary_sentences=5,
        admin_keys=[ADMIN_KEY],
    )


# The schema is needed at collection time, before fixtures exist; the routes and their schemas do not depend on
# the settings, so an app that never starts gives the same document as the one under test.
# (`schemathesis.pytest.from_fixture` would avoid this, but its lazy tests break on pytest 9.)
schema = schemathesis.openapi.from_dict(
    create_app(fuzz_settings(Path("unused"))).openapi(),
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        }
    ),
)


@pytest.fixture(scope="module")
def tiny_predictor(model_dir: Path) -> Predictor:
    """Loaded once: schemathesis ends the app's lifespan after every test, and each start reuses it."""
    return Predictor.from_dir(model_dir, device="cpu")


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    if CASES:  # shown with `pytest -s`
        total = sum(CASES.values())
        statuses = dict(sorted(STATUSES.items()))
        print(f"\nschemathesis: {total} cases {dict(CASES)}; statuses {statuses}")  # noqa: T201


@pytest.fixture
def fuzz_app(model_dir: Path, tiny_predictor: Predictor) -> FastAPI:
    """The app over the real tiny model, its lifespan started and the model warmed up.

    Schemathesis' pytest plugin ends the lifespans it started when each test ends, so every test gets a fresh
    app; without the wait, its first requests would meet a model that is still loading (503).
    """
    app = create_app(fuzz_settings(model_dir), predictor=tiny_predictor)
    _wait_ready(app)
    return app


@schema.parametrize()
# One app per test, shared by its examples, is what the fixture is for; a busy machine must not fail the run.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_no_server_errors_and_responses_match_the_schema(case: schemathesis.Case, fuzz_app: FastAPI) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    response = case.call(app=fuzz_app, headers=headers)
    CASES[case.operation.label] += 1
    STATUSES[response.status_code] += 1
    case.validate_response(response, checks=CHECKS, headers=headers)


@pytest.mark.parametrize("path", ["/v1/analyze", "/v1/analyze/batch"])
def test_body_that_is_not_utf8_gets_422(client: TestClient, path: str) -> None:
    """Found by the fuzzer: JSON must be UTF-8, so bytes that are not are invalid JSON (422), not a 400."""
    body = b'{"text": "\xd8\xa8\xff\xfe"}'  # an Arabic letter, then two bytes that are never UTF-8
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error_type"] == "invalid_request"
