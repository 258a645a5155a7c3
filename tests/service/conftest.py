"""Fixtures for the HTTP layer: small limits, the fake predictor and a client whose model is ready."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from naba.service.app import create_app
from naba.settings import Settings
from tests.service.fakes import FakePredictor, wait_until_loaded


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Small limits, so the limit tests send small bodies."""
    return Settings(
        model_dir=tmp_path / "no-model",
        max_chars=500,
        max_batch_articles=4,
        summary_sentences=2,
        max_summary_sentences=5,
    )


@pytest.fixture
def predictor() -> FakePredictor:
    return FakePredictor()


@pytest.fixture
def client(settings: Settings, predictor: FakePredictor) -> Iterator[TestClient]:
    """A client over an app whose fake model has loaded and warmed up."""
    with TestClient(create_app(settings, predictor=predictor)) as client:
        wait_until_loaded(client)
        yield client
