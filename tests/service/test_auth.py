"""API and admin keys: open by default, 401 without a valid key, 403 for admin without admin rights.

Also: keys are read from a comma-separated environment variable, compared against every configured key, and
never written to the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.types import Message

from naba.service.app import create_app
from naba.service.auth import key_matches
from naba.settings import Settings
from tests.service.fakes import ECONOMY_TEXT, FakePredictor, wait_until_loaded

API_KEY = "api-key-3f9c2a71e0"
ADMIN_KEY = "admin-key-77ab41d5c8"
INFERENCE = [
    pytest.param("POST", "/v1/analyze", {"text": ECONOMY_TEXT}, id="analyze"),
    pytest.param("POST", "/v1/analyze/batch", {"articles": [{"text": ECONOMY_TEXT}]}, id="batch"),
    pytest.param("GET", "/v1/model", None, id="model"),
]
OPEN = ["/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def with_keys(settings: Settings, api_keys: list[str], admin_keys: list[str]) -> Settings:
    """The fixture's settings with keys, built anew so the keys go through validation."""
    base = settings.model_dump(exclude={"api_keys", "admin_keys"})
    return Settings(**base, api_keys=api_keys, admin_keys=admin_keys)


@pytest.fixture
def keyed_client(settings: Settings, predictor: FakePredictor) -> Iterator[TestClient]:
    """A ready app with one API key and one admin key."""
    app = create_app(with_keys(settings, [API_KEY], [ADMIN_KEY]), predictor=predictor)
    with TestClient(app) as client:
        wait_until_loaded(client)
        yield client


def call(client: TestClient, method: str, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.request(method, path, json=body, headers=headers)


def assert_error(response: Any, status: int, error_type: str, contains: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.json()["error_type"] == error_type
    assert contains in response.json()["error"]


# --- inference ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), INFERENCE)
def test_inference_is_open_without_api_keys(client: TestClient, method: str, path: str, body: Any) -> None:
    assert call(client, method, path, body).status_code == 200
    assert call(client, method, path, body, bearer("anything")).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), INFERENCE)
@pytest.mark.parametrize("key", [API_KEY, ADMIN_KEY], ids=["api-key", "admin-key"])
def test_inference_accepts_api_and_admin_keys(
    keyed_client: TestClient, method: str, path: str, body: Any, key: str
) -> None:
    assert call(keyed_client, method, path, body, bearer(key)).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), INFERENCE)
@pytest.mark.parametrize(
    "headers",
    [
        None,
        bearer("wrong-key"),
        bearer(API_KEY + "x"),
        bearer(API_KEY[:-1]),
        {"Authorization": API_KEY},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "longer", "prefix", "no-scheme", "basic", "empty"],
)
def test_inference_without_valid_key_is_401(
    keyed_client: TestClient,
    predictor: FakePredictor,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str] | None,
) -> None:
    calls_before = len(predictor.calls)
    response = call(keyed_client, method, path, body, headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert len(predictor.calls) == calls_before, "a refused request must not reach the model"


def test_unauthenticated_bad_body_is_401_not_422(keyed_client: TestClient) -> None:
    # Authentication comes first: without a key, nothing about the request is examined.
    assert_error(keyed_client.post("/v1/analyze", json={"nope": 1}), 401, "unauthorized")


MALFORMED = b'{"text": '


@pytest.mark.parametrize(
    ("path", "headers", "status", "error_type"),
    [
        ("/v1/analyze", {}, 401, "unauthorized"),
        ("/v1/analyze/batch", bearer("wrong-key"), 401, "unauthorized"),
        ("/v1/admin/reload", {}, 401, "unauthorized"),
        ("/v1/admin/reload", bearer(API_KEY), 403, "forbidden"),
    ],
    ids=["analyze", "batch-wrong-key", "admin", "admin-with-api-key"],
)
def test_malformed_json_without_a_valid_key_is_refused_before_it_is_parsed(
    keyed_client: TestClient, path: str, headers: dict[str, str], status: int, error_type: str
) -> None:
    response = keyed_client.post(
        path, content=MALFORMED, headers={"content-type": "application/json", **headers}
    )
    assert_error(response, status, error_type)
    assert ("www-authenticate" in response.headers) == (status == 401)
    # With a valid key the body is read, and its JSON is what is wrong.
    key = ADMIN_KEY if path.startswith("/v1/admin") else API_KEY
    response = keyed_client.post(
        path, content=MALFORMED, headers={"content-type": "application/json", **bearer(key)}
    )
    assert_error(response, 422, "invalid_request", "not valid JSON")


def test_malformed_json_to_disabled_admin_endpoints_is_403(client: TestClient) -> None:
    response = client.post(
        "/v1/admin/reload", content=MALFORMED, headers={"content-type": "application/json"}
    )
    assert_error(response, 403, "forbidden", "admin endpoints are disabled")


def _post_counting_reads(app: Any, headers: dict[str, str]) -> tuple[int, int]:
    """POST malformed JSON to /v1/analyze straight through the ASGI interface: (status, times the body was read)."""
    reads = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": MALFORMED, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(MALFORMED)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/analyze",
        "raw_path": b"/v1/analyze",
        "root_path": "",
        "query_string": b"",
        "headers": raw_headers + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("naba", 80),
    }
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], reads


def test_an_unauthenticated_body_is_never_read(settings: Settings, predictor: FakePredictor) -> None:
    """Without a key the server reads none of the body, so it cannot be made to parse megabytes of JSON."""
    app = create_app(with_keys(settings, [API_KEY], [ADMIN_KEY]), predictor=predictor)
    assert _post_counting_reads(app, {}) == (401, 0)
    assert _post_counting_reads(app, bearer("wrong-key")) == (401, 0)
    status, reads = _post_counting_reads(app, bearer(API_KEY))
    assert status == 422 and reads > 0  # the same request with a key: read, and refused for its JSON


@pytest.mark.parametrize("path", OPEN)
def test_probes_metrics_and_docs_stay_open(keyed_client: TestClient, path: str) -> None:
    assert keyed_client.get(path).status_code == 200


def test_openapi_documents_bearer_auth(keyed_client: TestClient) -> None:
    spec = keyed_client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, method in [("/v1/analyze", "post"), ("/v1/model", "get"), ("/v1/admin/reload", "post")]:
        assert spec["paths"][path][method]["security"] == [{"HTTPBearer": []}]
        assert "401" in spec["paths"][path][method]["responses"]
    assert "403" in spec["paths"]["/v1/admin/reload"]["post"]["responses"]
    assert "security" not in spec["paths"]["/healthz"]["get"]


# --- admin ----------------------------------------------------------------------------------------------


def test_admin_is_disabled_without_admin_keys(client: TestClient) -> None:
    response = client.post("/v1/admin/reload", headers=bearer("anything"))
    assert_error(response, 403, "forbidden", "admin endpoints are disabled: set NABA_ADMIN_KEYS")


def test_admin_stays_disabled_for_api_keys_when_no_admin_keys(settings: Settings) -> None:
    app = create_app(with_keys(settings, [API_KEY], []), predictor=FakePredictor())
    with TestClient(app) as client:
        wait_until_loaded(client)
        response = client.post("/v1/admin/reload", headers=bearer(API_KEY))
        assert_error(response, 403, "forbidden", "NABA_ADMIN_KEYS")


@pytest.mark.parametrize(
    ("headers", "status", "error_type"),
    [
        (None, 401, "unauthorized"),
        (bearer("wrong-key"), 401, "unauthorized"),
        (bearer(API_KEY), 403, "forbidden"),  # a known caller, but not an administrator
    ],
    ids=["missing", "wrong", "api-key"],
)
def test_admin_refuses_non_admin_keys(
    keyed_client: TestClient, headers: dict[str, str] | None, status: int, error_type: str
) -> None:
    response = keyed_client.post("/v1/admin/reload", json={"path": "/nonexistent"}, headers=headers)
    assert_error(response, status, error_type)
    assert ("www-authenticate" in response.headers) == (status == 401)
    assert keyed_client.get("/v1/model", headers=bearer(API_KEY)).json()["version"] == "0.0.1"


def test_admin_key_reaches_the_admin_route(keyed_client: TestClient) -> None:
    # Past authentication, the route runs: this path does not exist, so the reload itself fails.
    response = keyed_client.post("/v1/admin/reload", json={"path": "/nonexistent"}, headers=bearer(ADMIN_KEY))
    assert_error(response, 422, "reload_failed", "does not exist")


# --- settings and logs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("k1", ["k1"]),
        ("k1,k2", ["k1", "k2"]),
        (" k1 , k2 ,, ", ["k1", "k2"]),
        ('["k1", "k2"]', ["k1", "k2"]),
        ("", []),
    ],
    ids=["one", "comma", "spaces-and-blanks", "json", "empty"],
)
def test_keys_read_from_environment(monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]) -> None:
    monkeypatch.setenv("NABA_API_KEYS", raw)
    monkeypatch.setenv("NABA_ADMIN_KEYS", raw)
    settings = Settings()
    assert [key.get_secret_value() for key in settings.api_keys] == expected
    assert [key.get_secret_value() for key in settings.admin_keys] == expected


def test_key_matches_compares_whole_keys() -> None:
    keys = [SecretStr("alpha"), SecretStr("beta")]
    assert key_matches("beta", keys)
    assert not key_matches("bet", keys)
    assert not key_matches("betaa", keys)
    assert not key_matches("", keys)
    assert not key_matches("مفتاح", keys)  # non-ASCII input is compared, not an error
    assert not key_matches("alpha", [])


def test_keys_never_reach_the_log(
    settings: Settings, predictor: FakePredictor, caplog: pytest.LogCaptureFixture
) -> None:
    keyed = with_keys(settings, [API_KEY], [ADMIN_KEY])
    assert API_KEY not in repr(keyed) and API_KEY not in str(keyed.model_dump(mode="json"))
    with caplog.at_level(logging.DEBUG), TestClient(create_app(keyed, predictor=predictor)) as client:
        wait_until_loaded(client)
        client.post("/v1/analyze", json={"text": ECONOMY_TEXT}, headers=bearer(API_KEY))
        client.post("/v1/analyze", json={"text": ECONOMY_TEXT}, headers=bearer(ADMIN_KEY + "-wrong"))
        client.post("/v1/admin/reload", json={"path": "/nonexistent"}, headers=bearer(ADMIN_KEY))
        client.post("/v1/admin/reload", headers=bearer(API_KEY))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "settings:" in logged and "**********" in logged, "the settings are logged, keys masked"
    assert API_KEY not in logged
    assert ADMIN_KEY not in logged
