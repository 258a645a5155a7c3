"""The model registry: versions added whole, the `current` pointer swapped atomically, a history that rollback
follows, and a service that follows the pointer by itself (NABA_WATCH_MODEL_S)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from naba.models.artifacts import load_artifact, read_config, save_artifact
from naba.registry import Registry, RegistryError
from naba.service.app import create_app
from naba.settings import Settings
from tests.conftest import NEGATIVES


@pytest.fixture(scope="module")
def model_v2(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    model, tokenizer, config = load_artifact(model_dir)
    config.version = "test-2"
    return save_artifact(model, tokenizer, config, tmp_path_factory.mktemp("v2") / "tiny-v2")


def test_promote_and_rollback_follow_the_history(tmp_path: Path, model_dir: Path, model_v2: Path) -> None:
    registry = Registry(tmp_path / "registry")
    assert registry.current() is None and registry.versions() == []
    assert registry.add(model_dir) == "test-1" and registry.add(model_v2) == "test-2"
    with pytest.raises(RegistryError, match="already"):
        registry.add(model_v2)
    registry.promote("test-1", by="ops", reason="first")
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback(by="ops", reason="no")
    registry.promote("test-2", by="retrain", reason="macro-F1 +0.02")
    assert registry.current() == "test-2"
    assert read_config(registry.current_link).version == "test-2"  # the pointer is a directory to load
    event = registry.rollback(by="ops", reason="analysts saw worse tags")
    assert (event.action, event.version, event.previous) == ("rolled_back", "test-1", "test-2")
    assert registry.current() == "test-1"
    assert [(e.action, e.version, e.by) for e in registry.history()] == [
        ("promoted", "test-1", "ops"), ("promoted", "test-2", "retrain"), ("rolled_back", "test-1", "ops"),
    ]  # fmt: skip
    with pytest.raises(RegistryError, match="no version"):
        registry.promote("test-9", by="ops", reason="typo")
    assert registry.current() == "test-1"


def test_a_copy_killed_half_way_leaves_the_registry_as_it_was(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(tmp_path / "registry")
    registry.add(model_dir)
    registry.promote("test-1", by="ops", reason="first")

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # stands for SIGKILL half-way through copying

    monkeypatch.setattr(shutil, "copytree", killed)
    with pytest.raises(KeyboardInterrupt):
        registry.add(model_dir, version="test-3")
    assert registry.versions() == ["test-1"] and registry.current() == "test-1"


def test_the_service_follows_the_pointer_without_a_restart(
    tmp_path: Path, model_dir: Path, model_v2: Path
) -> None:
    registry = Registry(tmp_path / "registry")
    registry.add(model_dir)
    registry.add(model_v2)
    registry.promote("test-1", by="ops", reason="first")
    settings = Settings(model_dir=registry.current_link, device="cpu", watch_model_s=0.05)
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/v1/model").json()["version"] == "test-1"
        registry.promote("test-2", by="ops", reason="newer")
        while client.get("/v1/model").json()["version"] != "test-2" and time.monotonic() < deadline:
            assert client.post("/v1/analyze", json={"text": NEGATIVES[0]}).status_code == 200  # never down
            time.sleep(0.05)
        assert client.get("/v1/model").json()["version"] == "test-2"
