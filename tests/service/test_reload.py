"""Hot reload: a good artifact replaces the served model; a bad one changes nothing and says why.

The app serves a copy of the session's tiny trained model (version test-1); `model_v2` is the same weights
saved again as version test-2 through the public artifact API, so it passes every check.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import naba.service.reload
from naba.models.artifacts import load_artifact, save_artifact
from naba.models.predictor import Predictor
from naba.models.results import DEFAULT_OPTIONS, Analysis, Article, LabelResult, ResultOptions
from naba.service.app import create_app
from naba.service.errors import ReloadFailedError
from naba.service.reload import SMOKE_ARTICLE, smoke_check
from naba.settings import Settings
from tests.conftest import NEGATIVES
from tests.service.fakes import FakeEncoded, FakePredictor, in_thread, wait_until_loaded

ADMIN_KEY = "admin-key-for-reload-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
TEXT = NEGATIVES[0]


@pytest.fixture(scope="module")
def model_v2(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """The tiny model re-saved as version test-2: a valid artifact, checksums and all."""
    model, tokenizer, config = load_artifact(model_dir)
    config.version = "test-2"
    return save_artifact(model, tokenizer, config, tmp_path_factory.mktemp("v2") / "tiny-v2")


@pytest.fixture
def serving_dir(tmp_path: Path, model_dir: Path) -> Path:
    """A copy of the tiny model at the configured NABA_MODEL_DIR, which tests may replace on disk."""
    return Path(shutil.copytree(model_dir, tmp_path / "current"))


@pytest.fixture
def reload_settings(serving_dir: Path) -> Settings:
    return Settings(model_dir=serving_dir, device="cpu", admin_keys=[ADMIN_KEY])


@pytest.fixture
def real_client(reload_settings: Settings) -> Iterator[TestClient]:
    """The app loading the test-1 artifact from disk, as `naba serve` does."""
    with TestClient(create_app(reload_settings)) as client:
        wait_until_loaded(client)
        yield client


def reload(client: TestClient, path: Path | None = None) -> Any:
    return client.post("/v1/admin/reload", json=None if path is None else {"path": str(path)}, headers=ADMIN)


def served_version(client: TestClient) -> str:
    version: str = client.get("/v1/model").json()["version"]
    assert client.get("/readyz").json()["model"]["version"] == version
    assert client.post("/v1/analyze", json={"text": TEXT}).json()["model"]["version"] == version
    return version


def assert_reload_failed(response: Any, *reasons: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error_type"] == "reload_failed"
    assert "still serving naba test-1" in body["error"]
    for reason in reasons:
        assert reason in body["error"]


# --- success --------------------------------------------------------------------------------------------


def test_reload_swaps_in_the_new_model(real_client: TestClient, model_v2: Path) -> None:
    assert served_version(real_client) == "test-1"
    response = reload(real_client, model_v2)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "naba", "version": "test-2"}
    assert body["previous_model"] == {"name": "naba", "version": "test-1"}
    assert body["path"] == str(model_v2)
    assert body["seconds"] >= 0
    assert served_version(real_client) == "test-2"
    info = real_client.get("/v1/model").json()
    assert info["labels"] == ["attack", "coordination_centre", "joint_operation"]
    assert set(info["thresholds"]) == set(info["labels"])


@pytest.mark.parametrize("body", [None, {}, {"path": None}], ids=["no-body", "empty-object", "null-path"])
def test_reload_without_path_rereads_model_dir(
    real_client: TestClient, serving_dir: Path, model_v2: Path, body: dict[str, Any] | None
) -> None:
    # Deploy the new artifact where the service was told to look, then ask it to look again.
    shutil.rmtree(serving_dir)
    shutil.copytree(model_v2, serving_dir)
    response = real_client.post("/v1/admin/reload", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["path"] == str(serving_dir)
    assert served_version(real_client) == "test-2"


# --- failures keep the old model --------------------------------------------------------------------------


def test_reload_from_missing_directory_keeps_old_model(real_client: TestClient, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    assert_reload_failed(reload(real_client, missing), str(missing), "does not exist")
    assert served_version(real_client) == "test-1"


def test_reload_from_a_file_says_it_is_not_a_directory(real_client: TestClient, model_dir: Path) -> None:
    weights = model_dir / "model.safetensors"
    assert weights.is_file()
    assert_reload_failed(reload(real_client, weights), f"{weights} is not a directory")
    assert served_version(real_client) == "test-1"


def test_reload_of_hand_edited_artifact_fails_its_checksum(
    real_client: TestClient, model_dir: Path, tmp_path: Path
) -> None:
    edited = Path(shutil.copytree(model_dir, tmp_path / "edited"))
    config_file = edited / "naba_config.json"
    config = json.loads(config_file.read_text("utf-8"))
    config["version"] = "test-2"
    config_file.write_text(json.dumps(config), "utf-8")
    assert_reload_failed(reload(real_client, edited), "naba_config.json does not match its checksum")
    assert served_version(real_client) == "test-1"


def test_reload_of_incomplete_artifact_keeps_old_model(
    real_client: TestClient, model_v2: Path, tmp_path: Path
) -> None:
    torn = Path(shutil.copytree(model_v2, tmp_path / "torn"))
    (torn / "tokenizer.json").unlink()
    assert_reload_failed(reload(real_client, torn), "incomplete", "tokenizer.json is missing")
    assert served_version(real_client) == "test-1"


def test_reload_of_model_failing_smoke_check_keeps_old_model(
    real_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = broken(score("economy", 1.5))
    monkeypatch.setattr(naba.service.reload.Predictor, "from_dir", lambda path, **kwargs: bad)
    assert_reload_failed(reload(real_client, Path("/any")), "smoke check failed", "outside [0, 1]")
    assert served_version(real_client) == "test-1"


def test_reload_of_model_crashing_on_load_keeps_old_model(
    real_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(path: Path, device: str, **kwargs: Any) -> Predictor:
        raise OSError("disk on fire")

    monkeypatch.setattr(naba.service.reload.Predictor, "from_dir", crash)
    assert_reload_failed(reload(real_client, Path("/any")), "OSError: disk on fire")
    assert served_version(real_client) == "test-1"


@pytest.mark.parametrize(
    "body", [{"path": 5}, {"path": ""}, {"model": "x"}, ["x"]], ids=["number", "empty", "unknown", "list"]
)
def test_reload_rejects_malformed_body(real_client: TestClient, body: Any) -> None:
    response = real_client.post("/v1/admin/reload", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error_type"] == "invalid_request"
    assert served_version(real_client) == "test-1"


def test_reload_recovers_from_a_failed_startup_load(tmp_path: Path, model_v2: Path) -> None:
    settings = Settings(model_dir=tmp_path / "missing", device="cpu", admin_keys=[ADMIN_KEY])
    with TestClient(create_app(settings)) as client:
        wait_until_loaded(client)
        assert client.get("/readyz").status_code == 503
        failed = reload(client, tmp_path / "also-missing")
        assert failed.status_code == 422 and "still serving no model" in failed.json()["error"]
        response = reload(client, model_v2)
        assert response.status_code == 200
        assert response.json()["previous_model"] is None
        assert client.get("/readyz").status_code == 200
        assert client.post("/v1/analyze", json={"text": SMOKE_ARTICLE.text}).status_code == 200


# --- concurrency ----------------------------------------------------------------------------------------


def test_concurrent_reload_is_409_and_serving_goes_on(
    real_client: TestClient, model_v2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    real_from_dir = Predictor.from_dir

    def slow_from_dir(path: Path, device: str, **kwargs: Any) -> Predictor:
        entered.set()
        assert release.wait(timeout=30), "test never released the load"
        return real_from_dir(path, device=device)

    monkeypatch.setattr(naba.service.reload.Predictor, "from_dir", slow_from_dir)
    first, out = in_thread(lambda: reload(real_client, model_v2))
    try:
        assert entered.wait(timeout=30)
        second = reload(real_client, model_v2)
        assert second.status_code == 409, second.text
        assert second.json()["error_type"] == "reload_in_progress"
        assert served_version(real_client) == "test-1", "the old model serves while the new one loads"
    finally:
        release.set()
        first.join(timeout=60)
    assert out[0].status_code == 200, out[0].text
    assert served_version(real_client) == "test-2"
    assert reload(real_client, model_v2).status_code == 200, "the lock is free again"


class GatedPredictor(FakePredictor):
    """Its model calls block until `gate` is set, so a request can be caught in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.encoded = threading.Semaphore(0)

    def encode(self, article: Article) -> FakeEncoded:
        self.encoded.release()
        return super().encode(article)

    def score(self, encoded: Sequence[FakeEncoded]) -> list[FakeEncoded]:
        self.entered.set()
        assert self.gate.wait(timeout=30), "test never opened the gate"
        return super().score(encoded)


def test_requests_in_flight_finish_on_the_old_model(tmp_path: Path, model_v2: Path) -> None:
    old = GatedPredictor()
    settings = Settings(model_dir=tmp_path / "unused", device="cpu", admin_keys=[ADMIN_KEY])
    with TestClient(create_app(settings, predictor=old)) as client:  # type: ignore[arg-type]
        wait_until_loaded(client)

        def analyze() -> Any:
            return client.post("/v1/analyze", json={"text": TEXT})

        running, running_out = in_thread(analyze)
        try:
            assert old.entered.wait(timeout=30)  # the worker is inside the old model
            queued, queued_out = in_thread(analyze)
            assert old.encoded.acquire(timeout=30) and old.encoded.acquire(timeout=30)  # both encoded
            response = reload(client, model_v2)
            assert response.status_code == 200, response.text
            assert response.json()["previous_model"] == {"name": "fake-topics", "version": "0.0.1"}
        finally:
            old.gate.set()
            running.join(timeout=30)
            queued.join(timeout=30)
        assert running_out[0].json()["model"]["version"] == "0.0.1"
        assert queued_out[0].json()["model"]["version"] == "0.0.1"
        assert served_version(client) == "test-2"


# --- the smoke check ------------------------------------------------------------------------------------


def broken(change: Callable[[Analysis], Analysis]) -> FakePredictor:
    """A fake predictor that loads and warms up, but whose answers are passed through `change`."""

    class Broken(FakePredictor):
        def analyze(
            self, articles: Sequence[Article], options: ResultOptions = DEFAULT_OPTIONS
        ) -> list[Analysis]:
            return [change(a) for a in super().analyze(articles, options)]

    return Broken()


def replace(**changes: Any) -> Callable[[Analysis], Analysis]:
    return lambda analysis: dataclasses.replace(analysis, **changes)


def score(label: str, value: float) -> Callable[[Analysis], Analysis]:
    return lambda analysis: dataclasses.replace(analysis, scores={**analysis.scores, label: value})


def test_smoke_check_passes_the_real_and_the_fake_model(model_dir: Path) -> None:
    smoke_check(Predictor.from_dir(model_dir, device="cpu"))
    smoke_check(FakePredictor())  # type: ignore[arg-type]


SMOKE_FAILURES = [
    pytest.param(score("sports", 1.5), "outside [0, 1]", id="above-one"),
    pytest.param(score("sports", -0.1), "outside [0, 1]", id="negative"),
    pytest.param(score("sports", float("nan")), "outside [0, 1]", id="nan"),
    pytest.param(replace(scores={"economy": 0.5}), "not the labels", id="missing-score"),
    pytest.param(replace(labels=[LabelResult("weather", 0.7, [])]), "without a score", id="unscored-label"),
    pytest.param(replace(labels=[LabelResult("economy", 1.2, [])]), "outside [0, 1]", id="label-score"),
    pytest.param(
        replace(labels=[LabelResult("economy", 0.7, ["نص مختلق."])]), "evidence", id="invented-evidence"
    ),
    pytest.param(replace(summary="ملخص مختلق."), "not made of the article", id="invented-summary"),
    pytest.param(replace(summary_indices=[99]), "summary_indices", id="bad-index"),
    pytest.param(replace(summary_indices=[]), "summary_indices", id="no-summary"),
]


@pytest.mark.parametrize(("change", "reason"), SMOKE_FAILURES)
def test_smoke_check_refuses_broken_answers(change: Callable[[Analysis], Analysis], reason: str) -> None:
    with pytest.raises(ReloadFailedError, match="smoke check failed") as caught:
        smoke_check(broken(change))  # type: ignore[arg-type]
    assert reason in caught.value.message


def test_smoke_article_has_several_sentences() -> None:
    from naba.models.preprocessing import split_sentences

    assert len(split_sentences(SMOKE_ARTICLE.text)) >= 3
