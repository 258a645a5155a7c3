"""`POST /v1/feedback`: analysts' corrections are checked against the served model and the text, stored in the
SQL store (`naba.corrections`), kept across restarts, and read back as training rows."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from naba.corrections import CorrectionStore, StoreError
from naba.models.records import read_records
from naba.service.app import create_app
from naba.settings import Settings
from tests.conftest import write_jsonl
from tests.service.fakes import ECONOMY_TEXT, FakePredictor, wait_until_loaded

MODEL = {"name": "fake", "version": "1"}
SENTENCE = "وقال المحافظ إن القرار يكبح التضخم."


@pytest.fixture
def store_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'corrections.sqlite3'}"})


def post(settings: Settings, body: dict) -> tuple[int, dict]:
    with TestClient(create_app(settings, predictor=FakePredictor())) as client:
        wait_until_loaded(client)
        response = client.post("/v1/feedback", json=body)
        return response.status_code, response.json()


def test_a_correction_is_stored_and_survives_a_restart(store_settings: Settings, tmp_path: Path) -> None:
    body = {"text": ECONOMY_TEXT, "title": "الفائدة", "id": "a1", "labels": ["economy"],
            "evidence": {"economy": SENTENCE}, "model": MODEL}  # fmt: skip
    status, first = post(store_settings, body)
    assert status == 201 and first["id"] == 1 and first["created"]
    status, second = post(store_settings, {**body, "labels": [], "evidence": {}, "id": None})  # a new process
    assert status == 201 and second["id"] == 2

    store = CorrectionStore(store_settings.database_url)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    stored = list(store.all())
    assert [(c.id, c.labels, dict(c.evidence), c.model_name) for c in stored] == [
        (1, ("economy",), {"economy": SENTENCE}, "fake"),
        (2, (), {}, "fake"),
    ]
    rows = [c.record() for c in stored]
    records = read_records([write_jsonl(tmp_path / "corrections.jsonl", rows)])  # training reads them as is
    assert [(r.id, r.labels, r.evidence) for r in records] == [
        ("a1", ("economy",), {"economy": SENTENCE}),
        ("correction-2", (), None),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": ["weather"]}, "unknown labels ['weather']"),
        ({"labels": ["economy", "economy"]}, "labels repeat"),
        ({"labels": [], "evidence": {"economy": SENTENCE}}, "evidence for labels the article does not carry"),
        ({"evidence": {"economy": "جملة ليست في النص."}}, "not a passage of the text"),
        ({"text": "   "}, "empty"),
    ],
)
def test_a_correction_the_model_or_text_contradicts_is_refused(
    store_settings: Settings, change: dict, message: str
) -> None:
    body = {"text": ECONOMY_TEXT, "labels": ["economy"], "evidence": {"economy": SENTENCE}, "model": MODEL}
    status, answer = post(store_settings, {**body, **change})
    assert status == 422 and message in answer["error"]
    assert list(CorrectionStore(store_settings.database_url).all()) == []


def test_an_unreachable_store_is_a_503_and_the_service_stays_up(settings: Settings, tmp_path: Path) -> None:
    unreachable = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/missing/dir/c.sqlite3"})
    with TestClient(create_app(unreachable, predictor=FakePredictor())) as client:
        wait_until_loaded(client)
        body = {"text": ECONOMY_TEXT, "labels": [], "model": MODEL}
        refused = client.post("/v1/feedback", json=body)
        assert refused.status_code == 503 and refused.json()["error_type"] == "store_unavailable"
        assert client.post("/v1/analyze", json={"text": ECONOMY_TEXT}).status_code == 200


def test_the_page_and_its_files_are_served_offline(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and '<html lang="ar" dir="rtl">' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: it works offline
    for path in (
        "/static/app.js",
        "/static/style.css",
        "/static/fonts/noto-naskh-arabic-arabic-400-normal.woff2",
    ):
        assert client.get(path).status_code == 200, path
    css = client.get("/static/style.css").text
    assert "https://" not in css and "/static/fonts/" in css


def test_sentences_come_back_only_when_asked(client: TestClient) -> None:
    plain = client.post("/v1/analyze", json={"text": ECONOMY_TEXT}).json()
    asked = client.post("/v1/analyze", json={"text": ECONOMY_TEXT, "include_sentences": True}).json()
    assert plain["sentences"] is None
    assert asked["sentences"][1] == SENTENCE
    assert all(asked["sentences"][i] in asked["summary"] for i in asked["summary_indices"])


def test_the_latest_correction_of_an_article_is_exported_with_who_sent_it(tmp_path: Path) -> None:
    settings = Settings(model_dir=tmp_path / "none", database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}",
                        api_keys="analyst-key", admin_keys="admin-key")  # fmt: skip
    analyst, admin = {"Authorization": "Bearer analyst-key"}, {"Authorization": "Bearer admin-key"}
    first = {"text": ECONOMY_TEXT, "id": "a1", "labels": ["economy"], "model": MODEL}
    second = {**first, "labels": ["economy", "politics"], "evidence": {"politics": SENTENCE},
              "summary": "رفع البنك المركزي سعر الفائدة."}  # fmt: skip
    other = {"text": "عقد البرلمان جلسة طارئة.", "labels": ["politics"], "model": MODEL}
    with TestClient(create_app(settings, predictor=FakePredictor())) as client:
        wait_until_loaded(client)
        for body in (first, other, second):
            assert client.post("/v1/feedback", json=body, headers=analyst).status_code == 201
        assert client.get("/v1/feedback", headers=analyst).status_code == 403  # export is for admins
        export = client.get("/v1/feedback", headers=admin)
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in export.text.splitlines()]
    assert rows == [
        {"id": "correction-2", "text": other["text"], "labels": ["politics"]},
        {"id": "a1", "text": ECONOMY_TEXT, "labels": ["economy", "politics"], "evidence": {"politics": SENTENCE},
         "summary": second["summary"]},
    ]  # fmt: skip
    stored = list(CorrectionStore(settings.database_url).all())
    assert len(stored) == 3 and {c.submitted_by for c in stored} == {
        "key:" + hashlib.sha256(b"analyst-key").hexdigest()[:12]
    }


def test_a_database_from_a_newer_naba_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    store = CorrectionStore(url)
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE naba_schema SET version = 99")
    store.close()
    with pytest.raises(StoreError, match="schema version 99"):
        CorrectionStore(url)
