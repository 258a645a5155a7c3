"""The HTTP contract: happy paths, every bad input, readiness, model info, metrics and docs.

Each bad request must get its mapped status and the common error body, must not reach the predictor, and
must leave the service answering the next request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from naba.service.app import create_app
from naba.settings import Settings
from tests.service.fakes import (
    ECONOMY_TEXT,
    POLITICS_TEXT,
    SPORTS_TEXT,
    FakeEncoded,
    FakePredictor,
    GatedPredictor,
    RaisingPredictor,
    SlowWarmUpPredictor,
    in_thread,
    wait_until_loaded,
)


def assert_error(response: Any, status: int, error_type: str, contains: str = "") -> None:
    """The response has `status` and exactly the common error body, with `contains` in its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_type"}
    assert body["error_type"] == error_type
    assert contains in body["error"]


def assert_still_serving(client: TestClient) -> None:
    response = client.post("/v1/analyze", json={"text": ECONOMY_TEXT})
    assert response.status_code == 200, response.text


# --- happy paths --------------------------------------------------------------------------------------------


def test_analyze_returns_labels_evidence_and_summary(client: TestClient) -> None:
    response = client.post("/v1/analyze", json={"text": ECONOMY_TEXT, "title": "البنك المركزي"})
    assert response.status_code == 200
    body = response.json()
    assert [label["label"] for label in body["labels"]] == ["economy"]
    assert body["labels"][0]["evidence"] == [
        "أعلن البنك المركزي رفع سعر الفائدة.",
        "وقال المحافظ إن القرار يكبح التضخم.",
    ]
    assert body["scores"] == {"economy": 0.9, "politics": 0.1, "sports": 0.1}
    # Default length comes from settings.summary_sentences (2 in the fixture).
    assert body["summary_indices"] == [0, 1]
    assert body["summary"] == "أعلن البنك المركزي رفع سعر الفائدة. وقال المحافظ إن القرار يكبح التضخم."
    assert body["model"] == {"name": "fake-topics", "version": "0.0.1"}


def test_analyze_passes_title_and_summary_sentences(client: TestClient, predictor: FakePredictor) -> None:
    response = client.post(
        "/v1/analyze", json={"text": ECONOMY_TEXT, "title": "عنوان", "summary_sentences": 1}
    )
    assert response.status_code == 200
    assert response.json()["summary_indices"] == [0]
    assert predictor.calls[-1][0].title == "عنوان"
    assert predictor.summary_requests[-1] == 1


def test_analyze_runs_model_on_inference_thread(client: TestClient, predictor: FakePredictor) -> None:
    client.post("/v1/analyze", json={"text": ECONOMY_TEXT})
    # Requests ran on the engine's one worker thread, never the event loop's.
    assert len(set(predictor.threads)) == 1
    assert predictor.threads[0].startswith("naba-inference")


def test_batch_keeps_order_and_echoes_ids(client: TestClient, predictor: FakePredictor) -> None:
    articles = [
        {"id": "s", "text": SPORTS_TEXT},
        {"id": "e", "text": ECONOMY_TEXT, "title": "اقتصاد"},
        {"text": POLITICS_TEXT},
    ]
    response = client.post("/v1/analyze/batch", json={"articles": articles, "summary_sentences": 1})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["id"] for r in results] == ["s", "e", None]
    assert [[label["label"] for label in r["labels"]] for r in results] == [
        ["sports"],
        ["economy"],
        ["politics"],
    ]
    assert all(r["summary_indices"] == [0] for r in results)
    # One model call for the whole batch.
    assert [a.id for a in predictor.calls[-1]] == ["s", "e", None]
    assert predictor.summary_requests[-3:] == [1, 1, 1]


@pytest.mark.parametrize(
    ("operating_point", "labels"),
    [("balanced", ["economy"]), ("precision", []), ("recall", ["economy", "politics", "sports"])],
)
def test_analyze_applies_the_operating_point(
    client: TestClient, predictor: FakePredictor, operating_point: str, labels: list[str]
) -> None:
    response = client.post("/v1/analyze", json={"text": ECONOMY_TEXT, "operating_point": operating_point})
    assert response.status_code == 200, response.text
    assert [label["label"] for label in response.json()["labels"]] == labels
    assert predictor.options[-1]["operating_point"] == operating_point


def test_analyze_summary_ratio_sets_the_length_from_the_article(
    client: TestClient, predictor: FakePredictor
) -> None:
    response = client.post("/v1/analyze", json={"text": ECONOMY_TEXT, "summary_ratio": 0.5})
    assert response.status_code == 200, response.text
    assert response.json()["summary_indices"] == [0, 1]  # ceil(0.5 * 3 sentences)
    assert predictor.options[-1] | {"text": None} == {
        "text": None,
        "summary_sentences": None,
        "summary_ratio": 0.5,
        "max_summary_sentences": 5,
        "operating_point": "balanced",
    }
    # A ratio of a long article is capped by max_summary_sentences (5 in the fixture); 1 is a valid ratio.
    long_text = " ".join([ECONOMY_TEXT] * 3)
    response = client.post("/v1/analyze", json={"text": long_text, "summary_ratio": 1})
    assert response.json()["summary_indices"] == [0, 1, 2, 3, 4]


def test_batch_passes_operating_point_and_summary_ratio(client: TestClient, predictor: FakePredictor) -> None:
    body = {"articles": _articles(2), "operating_point": "recall", "summary_ratio": 0.1}
    response = client.post("/v1/analyze/batch", json=body)
    assert response.status_code == 200, response.text
    for result in response.json()["results"]:
        assert len(result["labels"]) == 3 and result["summary_indices"] == [0]
    assert [(o["operating_point"], o["summary_ratio"]) for o in predictor.options[-2:]] == [
        ("recall", 0.1)
    ] * 2


def test_batch_result_equals_single_result(client: TestClient) -> None:
    single = client.post("/v1/analyze", json={"text": ECONOMY_TEXT}).json()
    batch = client.post("/v1/analyze/batch", json={"articles": [{"text": ECONOMY_TEXT}]}).json()
    assert batch["results"][0] == {"id": None, **single}


# --- bad input ----------------------------------------------------------------------------------------------

BAD_ANALYZE_BODIES = [
    pytest.param({"text": ""}, 422, "empty_input", "text is empty", id="empty"),
    pytest.param({"text": "  \n\t "}, 422, "empty_input", "text is empty", id="whitespace"),
    pytest.param({"text": "ب" * 501}, 413, "input_too_long", "501 characters", id="too-long"),
    pytest.param(
        {"text": ECONOMY_TEXT, "title": "ع" * 501}, 413, "input_too_long", "title", id="title-too-long"
    ),
    pytest.param({"text": "Breaking news in English."}, 422, "invalid_input", "no Arabic", id="no-arabic"),
    pytest.param({"text": 123}, 422, "invalid_request", "text:", id="text-number"),
    pytest.param({"text": ["نص"]}, 422, "invalid_request", "text:", id="text-list"),
    pytest.param({"text": ECONOMY_TEXT, "title": 5}, 422, "invalid_request", "title:", id="title-number"),
    pytest.param({}, 422, "invalid_request", "text: Field required", id="missing-text"),
    pytest.param({"text": ECONOMY_TEXT, "lang": "ar"}, 422, "invalid_request", "lang:", id="unknown-field"),
    pytest.param([ECONOMY_TEXT], 422, "invalid_request", "request body:", id="array-body"),
    pytest.param(
        {"text": ECONOMY_TEXT, "summary_sentences": "2"},
        422,
        "invalid_request",
        "summary_sentences:",
        id="str-n",
    ),
    pytest.param(
        {"text": ECONOMY_TEXT, "summary_sentences": 0},
        422,
        "invalid_request",
        "summary_sentences:",
        id="zero",
    ),
    pytest.param(
        {"text": ECONOMY_TEXT, "summary_sentences": 6},
        422,
        "invalid_input",
        "most allowed is 5",
        id="too-many",
    ),
    pytest.param(
        {"text": ECONOMY_TEXT, "summary_sentences": 2, "summary_ratio": 0.5},
        422,
        "invalid_request",
        "give summary_sentences or summary_ratio, not both",
        id="both-summary-options",
    ),
    pytest.param(
        {"text": ECONOMY_TEXT, "summary_ratio": 0}, 422, "invalid_request", "summary_ratio:", id="ratio-zero"
    ),
    pytest.param(
        {"text": ECONOMY_TEXT, "summary_ratio": 1.5}, 422, "invalid_request", "summary_ratio:", id="ratio-big"
    ),
    pytest.param(
        {"text": ECONOMY_TEXT, "summary_ratio": "0.5"},
        422,
        "invalid_request",
        "summary_ratio:",
        id="ratio-str",
    ),
    pytest.param(
        {"text": ECONOMY_TEXT, "operating_point": "lenient"},
        422,
        "invalid_request",
        "operating_point:",
        id="operating-point",
    ),
    pytest.param(
        {"text": ECONOMY_TEXT, "operating_point": None},
        422,
        "invalid_request",
        "operating_point:",
        id="operating-point-null",
    ),
]


@pytest.mark.parametrize(("body", "status", "error_type", "message"), BAD_ANALYZE_BODIES)
def test_analyze_rejects_bad_input(
    client: TestClient, predictor: FakePredictor, body: Any, status: int, error_type: str, message: str
) -> None:
    calls_before = len(predictor.calls)
    assert_error(client.post("/v1/analyze", json=body), status, error_type, message)
    assert len(predictor.calls) == calls_before, "a rejected request must not reach the model"
    assert_still_serving(client)


@pytest.mark.parametrize("raw", [b'{"text": ', b"not json", b""], ids=["truncated", "not-json", "no-body"])
def test_analyze_rejects_invalid_json(client: TestClient, raw: bytes) -> None:
    response = client.post("/v1/analyze", content=raw, headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_request")
    assert_still_serving(client)


def test_invalid_json_message_says_so(client: TestClient) -> None:
    response = client.post("/v1/analyze", content=b'{"text": ', headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_request", "not valid JSON")


@pytest.mark.parametrize("path", ["/v1/analyze", "/v1/analyze/batch"])
@pytest.mark.parametrize(
    "raw", [b"[" * 100_000, b'{"text": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"], ids=["open", "closed"]
)
def test_deeply_nested_json_is_invalid_json(client: TestClient, path: str, raw: bytes) -> None:
    """The JSON parser gives up on deep nesting with a RecursionError, which FastAPI turns into a bare 400."""
    response = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_request", "request body is not valid JSON: it is nested too deeply")
    assert_still_serving(client)


@pytest.mark.parametrize(
    "headers",
    [{"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"}, {}],
    ids=["text-plain", "form", "none"],
)
def test_json_sent_without_its_content_type_says_which_to_send(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.post("/v1/analyze", content=json.dumps({"text": ECONOMY_TEXT}), headers=headers)
    assert_error(
        response,
        422,
        "invalid_request",
        "request body must be JSON, sent with 'Content-Type: application/json'",
    )


# JSON can spell a lone UTF-16 surrogate (json.dumps writes one as an ASCII escape, `\\ud800`), and it decodes
# to a str that no tokenizer takes and no UTF-8 writer writes.
LONE_SURROGATES = [
    pytest.param("/v1/analyze", {"text": f"\ud800 {ECONOMY_TEXT}"}, "text holds", id="text"),
    pytest.param("/v1/analyze", {"text": ECONOMY_TEXT, "title": "\udc00"}, "title holds", id="title"),
    pytest.param(
        "/v1/analyze/batch",
        {"articles": [{"id": "\ud800", "text": ECONOMY_TEXT}]},
        "articles[0]: id holds",
        id="batch-id",
    ),
    pytest.param(
        "/v1/analyze/batch",
        {"articles": [{"text": ECONOMY_TEXT}, {"text": ECONOMY_TEXT, "title": "\ud83d"}]},
        "articles[1]: title holds",
        id="batch-title",
    ),
]


@pytest.mark.parametrize(("path", "body", "message"), LONE_SURROGATES)
def test_lone_surrogates_are_refused_before_the_model(
    client: TestClient, predictor: FakePredictor, path: str, body: dict[str, Any], message: str
) -> None:
    calls_before = len(predictor.calls)
    response = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_input", f"{message} a lone UTF-16 surrogate")
    assert len(predictor.calls) == calls_before
    assert_still_serving(client)


def test_a_surrogate_pair_is_text(client: TestClient) -> None:
    body = {"text": f"\ud83d\ude00 {ECONOMY_TEXT}", "title": "\ud83d\ude00"}  # an emoji, escaped as a pair
    response = client.post(
        "/v1/analyze", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text


def _articles(n: int) -> list[dict[str, str]]:
    return [{"id": str(i), "text": ECONOMY_TEXT} for i in range(n)]


BAD_BATCH_BODIES = [
    pytest.param(
        {"articles": _articles(5)}, 413, "batch_too_large", "5 articles; the limit is 4", id="too-large"
    ),
    pytest.param({"articles": []}, 422, "invalid_request", "articles:", id="empty-list"),
    pytest.param({}, 422, "invalid_request", "articles: Field required", id="missing-articles"),
    pytest.param(
        {"articles": [*_articles(2), {"text": " "}]},
        422,
        "empty_input",
        "articles[2]: text is empty",
        id="empty",
    ),
    pytest.param(
        {"articles": [{"text": ECONOMY_TEXT}, {"text": "ب" * 501}]},
        413,
        "input_too_long",
        "articles[1]: text has 501",
        id="too-long",
    ),
    pytest.param(
        {"articles": [{"text": "hello"}]},
        422,
        "invalid_input",
        "articles[0]: text holds no Arabic",
        id="no-arabic",
    ),
    pytest.param(
        {"articles": [{"text": ECONOMY_TEXT}, {"text": 7}]},
        422,
        "invalid_request",
        "articles[1].text:",
        id="type",
    ),
    pytest.param(
        {"articles": [{"text": ECONOMY_TEXT, "body": "x"}]},
        422,
        "invalid_request",
        "articles[0].body",
        id="extra",
    ),
    pytest.param(
        {"articles": _articles(1), "summary_sentences": 99},
        422,
        "invalid_input",
        "summary_sentences",
        id="summary",
    ),
    pytest.param(
        {"articles": _articles(1), "summary_sentences": 1, "summary_ratio": 0.5},
        422,
        "invalid_request",
        "not both",
        id="both-summary-options",
    ),
    pytest.param(
        {"articles": _articles(1), "summary_ratio": -0.5},
        422,
        "invalid_request",
        "summary_ratio:",
        id="ratio",
    ),
    pytest.param(
        {"articles": _articles(1), "operating_point": "PRECISION"},
        422,
        "invalid_request",
        "operating_point:",
        id="operating-point",
    ),
]


@pytest.mark.parametrize(("body", "status", "error_type", "message"), BAD_BATCH_BODIES)
def test_batch_rejects_bad_input(
    client: TestClient, predictor: FakePredictor, body: Any, status: int, error_type: str, message: str
) -> None:
    calls_before = len(predictor.calls)
    assert_error(client.post("/v1/analyze/batch", json=body), status, error_type, message)
    assert len(predictor.calls) == calls_before, "one bad article fails the whole batch before inference"
    assert_still_serving(client)


def test_batch_at_limit_is_accepted(client: TestClient) -> None:
    response = client.post("/v1/analyze/batch", json={"articles": _articles(4)})
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == ["0", "1", "2", "3"]


def test_truncate_cuts_a_long_text_to_max_chars_and_says_so(
    client: TestClient, predictor: FakePredictor
) -> None:
    long_text = " ".join([ECONOMY_TEXT] * 8)  # over the fixture's max_chars of 500
    assert len(long_text) > 500
    assert_error(client.post("/v1/analyze", json={"text": long_text}), 413, "input_too_long")

    response = client.post("/v1/analyze", json={"text": long_text, "title": "ع" * 600, "truncate": True})
    assert response.status_code == 200, response.text
    assert response.json()["truncated"] is True
    [article] = predictor.calls[-1]
    # Characters 500 and 501 are inside a word: the cut goes back to the word's start, the last whitespace within
    # truncate_text's slack window (200 characters), and leaves that space out.
    assert not long_text[499].isspace() and not long_text[500].isspace()
    last_space = long_text.rindex(" ", 0, 500)
    assert last_space >= 500 - 200
    assert article.text == long_text[:last_space]
    assert article.title == "ع" * 500  # no space to cut at: cut at the limit

    short = client.post("/v1/analyze", json={"text": ECONOMY_TEXT, "truncate": True})
    assert short.status_code == 200 and short.json()["truncated"] is False
    assert predictor.calls[-1][0].text == ECONOMY_TEXT


def test_truncate_in_a_batch_flags_each_article(client: TestClient) -> None:
    body = {
        "articles": [
            {"id": "long", "text": " ".join([ECONOMY_TEXT] * 8)},
            {"id": "short", "text": SPORTS_TEXT},
        ]
    }
    assert_error(client.post("/v1/analyze/batch", json=body), 413, "input_too_long", "articles[0]")
    response = client.post("/v1/analyze/batch", json={**body, "truncate": True})
    assert response.status_code == 200, response.text
    assert [(r["id"], r["truncated"]) for r in response.json()["results"]] == [
        ("long", True),
        ("short", False),
    ]


def test_body_over_max_body_bytes_gets_413_unread(settings: Settings, predictor: FakePredictor) -> None:
    app = create_app(settings.model_copy(update={"max_body_bytes": 2_000}), predictor=predictor)
    with TestClient(app) as small:
        wait_until_loaded(small)
        big = {"articles": _articles(4) + [{"id": "x", "text": "ب" * 400}] * 3}
        calls_before = len(predictor.calls)
        refused = {"route": "/v1/analyze/batch", "outcome": "body_too_large"}
        refused_before = _sample("naba_requests_total", refused)
        response = small.post("/v1/analyze/batch", json=big)
        assert_error(response, 413, "body_too_large", "2000 bytes")
        assert len(predictor.calls) == calls_before
        # Refused on its Content-Length, before routing, yet counted under the route it was sent to.
        assert _sample("naba_requests_total", refused) == refused_before + 1
        # A body streamed without Content-Length is cut off as it arrives.
        chunks = (piece.encode() for piece in ['{"text": "', "ب" * 3_000, '"}'])
        streamed = small.post("/v1/analyze", content=chunks, headers={"content-type": "application/json"})
        assert_error(streamed, 413, "body_too_large")
        assert small.post("/v1/analyze", json={"text": ECONOMY_TEXT}).status_code == 200


def test_unknown_path_and_wrong_method_use_error_body(client: TestClient) -> None:
    assert_error(client.get("/v1/nope"), 404, "not_found")
    response = client.get("/v1/analyze")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


def test_unexpected_error_is_generic_500_and_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    predictor = RaisingPredictor(RuntimeError("secret internal detail /srv/model.bin"))
    app = create_app(settings, predictor=predictor)
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        wait_until_loaded(client)
        response = client.post("/v1/analyze", json={"text": ECONOMY_TEXT})
        assert_error(response, 500, "internal_error", "internal server error")
        assert "secret" not in response.text
        assert "Traceback" not in response.text
        assert client.get("/healthz").status_code == 200
    logged = [r for r in caplog.records if r.name == "naba.service.errors" and r.exc_info]
    assert logged, "the traceback goes to the log"
    assert "secret internal detail" in str(logged[0].exc_info[1])


# --- backpressure -------------------------------------------------------------------------------------------


def test_requests_beyond_max_concurrent_requests_get_503(settings: Settings) -> None:
    predictor = GatedPredictor()
    app = create_app(settings.model_copy(update={"max_concurrent_requests": 1}), predictor=predictor)
    refused = {"route": "/v1/analyze/batch", "outcome": "overloaded"}
    with TestClient(app) as client:
        wait_until_loaded(client)
        held, out = in_thread(lambda: client.post("/v1/analyze", json={"text": ECONOMY_TEXT}))
        try:
            assert predictor.entered.wait(timeout=10), "the first request never reached the model"
            refused_before = _sample("naba_requests_total", refused)
            response = client.post("/v1/analyze/batch", json={"articles": _articles(1)})
            assert_error(response, 503, "overloaded", "requests in flight")
            assert response.headers["retry-after"] == "1"
            # Refused by the admission gate, before routing, yet counted under the route it was sent to.
            assert _sample("naba_requests_total", refused) == refused_before + 1
            assert client.get("/readyz").status_code == 200, "only analysis requests are gated"
        finally:
            predictor.gate.set()
            held.join(timeout=10)
        assert out[0].status_code == 200
        assert_still_serving(client)


def test_requests_beyond_max_queue_get_503(settings: Settings) -> None:
    predictor = GatedPredictor()
    app = create_app(
        settings.model_copy(update={"max_queue": 1, "max_batch_articles": 1}), predictor=predictor
    )
    with TestClient(app) as client:
        wait_until_loaded(client)
        held, out = in_thread(lambda: client.post("/v1/analyze", json={"text": ECONOMY_TEXT}))
        try:
            assert predictor.entered.wait(timeout=10), "the first request never reached the model"
            response = client.post("/v1/analyze", json={"text": SPORTS_TEXT})
            assert_error(response, 503, "overloaded", "the server is busy (1 articles in progress)")
            assert response.headers["retry-after"] == "1"
        finally:
            predictor.gate.set()
            held.join(timeout=10)
        assert out[0].status_code == 200
        assert_still_serving(client)


def test_a_request_past_request_timeout_s_gets_504(settings: Settings) -> None:
    predictor = GatedPredictor()  # its gate stays shut until the request has timed out
    app = create_app(settings.model_copy(update={"request_timeout_s": 0.05}), predictor=predictor)
    with TestClient(app) as client:
        wait_until_loaded(client)
        try:
            response = client.post("/v1/analyze", json={"text": ECONOMY_TEXT})
            assert_error(response, 504, "timeout", "no result within 0.05 s")
        finally:
            predictor.gate.set()


# --- health and readiness -----------------------------------------------------------------------------------


def test_healthz_and_readyz_when_ready(client: TestClient, predictor: FakePredictor) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "model": {"name": "fake-topics", "version": "0.0.1"}}
    assert predictor.warmed_up


def test_not_ready_until_warm_up_finishes(settings: Settings) -> None:
    predictor = SlowWarmUpPredictor()
    with TestClient(create_app(settings, predictor=predictor)) as client:
        try:
            assert client.get("/healthz").status_code == 200
            assert_error(client.get("/readyz"), 503, "model_not_ready", "still loading")
            assert_error(client.post("/v1/analyze", json={"text": ECONOMY_TEXT}), 503, "model_not_ready")
            assert_error(client.get("/v1/model"), 503, "model_not_ready")
        finally:
            predictor.release.set()
        wait_until_loaded(client)
        assert client.get("/readyz").status_code == 200
        assert client.post("/v1/analyze", json={"text": ECONOMY_TEXT}).status_code == 200


def test_torch_threads_sets_the_threads_the_model_runs_with(settings: Settings) -> None:
    class CountsThreads(FakePredictor):
        def score(self, encoded: Sequence[FakeEncoded]) -> list[FakeEncoded]:
            self.torch_threads = torch.get_num_threads()  # on the inference thread, where the model runs
            return super().score(encoded)

    predictor = CountsThreads()
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # so that the setting's 1 is a change
    try:
        app = create_app(settings.model_copy(update={"torch_threads": 1}), predictor=predictor)
        with TestClient(app) as client:
            wait_until_loaded(client)
            assert_still_serving(client)
        assert predictor.torch_threads == 1
    finally:
        torch.set_num_threads(before)


def test_failed_load_keeps_process_up(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    # No predictor and a model_dir that does not exist: Predictor.from_dir fails, the service stays up.
    with caplog.at_level(logging.ERROR), TestClient(create_app(settings)) as client:
        wait_until_loaded(client)
        assert client.get("/healthz").json() == {"status": "ok"}
        assert_error(client.get("/readyz"), 503, "model_not_ready", "failed to load")
        response = client.post("/v1/analyze", json={"text": ECONOMY_TEXT})
        assert_error(response, 503, "model_not_ready")
        assert str(settings.model_dir) not in response.text, "load details stay in the log"
        assert_error(
            client.post("/v1/analyze/batch", json={"articles": _articles(1)}), 503, "model_not_ready"
        )
    assert any("model not loaded from" in r.getMessage() for r in caplog.records)


def test_failed_warm_up_keeps_process_up(settings: Settings) -> None:
    class BrokenWarmUp(FakePredictor):
        def warm_up(self) -> None:
            raise RuntimeError("CUDA out of memory")

    with TestClient(create_app(settings, predictor=BrokenWarmUp())) as client:
        wait_until_loaded(client)
        assert client.get("/healthz").status_code == 200
        assert_error(client.get("/readyz"), 503, "model_not_ready")


# --- model info, metrics, docs ------------------------------------------------------------------------------


def test_model_info_reports_artifact_and_limits(client: TestClient) -> None:
    response = client.get("/v1/model")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "fake-topics"
    assert body["labels"] == ["economy", "politics", "sports"]
    assert body["thresholds"] == {"economy": 0.5, "politics": 0.5, "sports": 0.5}
    assert set(body["operating_points"]) == {"balanced", "precision", "recall"}
    assert body["operating_points"]["balanced"] == body["thresholds"]
    assert body["operating_points"]["precision"] == {"economy": 0.95, "politics": 0.95, "sports": 0.95}
    assert body["max_length"] == 128
    assert body["metrics"] == {"micro_f1": 1.0}
    assert (body["max_chars"], body["max_batch_articles"], body["max_summary_sentences"]) == (500, 4, 5)


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_metrics_count_requests_and_inference(client: TestClient) -> None:
    ok = {"route": "/v1/analyze", "outcome": "ok"}
    empty = {"route": "/v1/analyze", "outcome": "empty_input"}
    before = (_sample("naba_requests_total", ok), _sample("naba_requests_total", empty))
    articles_before = _sample("naba_articles_total")
    batches_before = _sample("naba_inference_batch_size_count")

    unknown = {"route": "unmatched", "outcome": "not_found"}
    unknown_before = _sample("naba_requests_total", unknown)

    client.post("/v1/analyze", json={"text": ECONOMY_TEXT})
    client.post("/v1/analyze", json={"text": ""})
    client.post("/v1/analyze/batch", json={"articles": _articles(3)})
    client.post("/v1/analyze/nope", json={"text": ECONOMY_TEXT})

    assert _sample("naba_requests_total", ok) == before[0] + 1
    assert _sample("naba_requests_total", empty) == before[1] + 1
    assert _sample("naba_requests_total", unknown) == unknown_before + 1  # raw paths never become labels
    assert _sample("naba_articles_total") == articles_before + 4
    assert _sample("naba_inference_batch_size_count") == batches_before + 2
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for name in (
        "naba_requests_total",
        "naba_request_duration_seconds_bucket",
        "naba_inference_duration_seconds",
    ):
        assert name in response.text


def test_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Naba"
    assert {"/v1/analyze", "/v1/analyze/batch", "/v1/model", "/healthz", "/readyz", "/metrics"} <= set(
        spec["paths"]
    )
    for name in ("AnalyzeRequest", "BatchAnalyzeRequest"):
        fields = spec["components"]["schemas"][name]["properties"]
        assert fields["operating_point"]["enum"] == ["balanced", "precision", "recall"]
        assert fields["operating_point"]["default"] == "balanced"
        assert "summary_ratio" in fields
    analyze = spec["paths"]["/v1/analyze"]["post"]
    assert analyze["responses"]["413"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ErrorResponse"
    )
    for path in ("/v1/analyze", "/v1/analyze/batch"):
        assert {"413", "422", "503", "504"} <= set(spec["paths"][path]["post"]["responses"])
    assert analyze["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ErrorResponse"
    )
