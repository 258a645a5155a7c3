"""The model shipped in `models/default`: it loads offline, is small, says what it is, and tags the seeds."""

from __future__ import annotations

import json

import pytest

from naba.models.artifacts import read_config
from naba.models.predictor import Predictor
from naba.models.results import Article
from naba.settings import DEFAULT_MODEL_DIR, Settings
from tests.conftest import NEGATIVES, seed_records

MAX_BYTES = 30 * 2**20  # the budget for a model kept in the repository


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return Predictor.from_dir(DEFAULT_MODEL_DIR, device="cpu")  # verifies every checksum


def test_the_service_serves_the_shipped_model_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NABA_MODEL_DIR", raising=False)
    assert Settings().model_dir == DEFAULT_MODEL_DIR


def test_shipped_model_is_small_and_documented() -> None:
    size = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir() if p.is_file())
    assert size <= MAX_BYTES
    config = read_config(DEFAULT_MODEL_DIR)
    assert config.labels == ["attack", "coordination_centre", "joint_operation"]
    assert set(config.operating_points) == {"precision", "recall"} and config.calibration
    card = (DEFAULT_MODEL_DIR / "README.md").read_text("utf-8")
    assert "macro-F1" in card and "SaudiNewsNet" in card  # metrics, and which data it was not trained on
    train_files = " ".join(config.training["train_files"])
    assert "saudinewsnet" not in train_files.lower() and "labelled/train.jsonl" not in train_files
    assert json.loads((DEFAULT_MODEL_DIR / "metrics.json").read_text("utf-8"))["macro_f1"] > 0


def test_shipped_model_tags_the_seed_articles(shipped: Predictor) -> None:
    """All five seed articles are about joint coordination centres (LABELS.md). They are in the model's
    training data, so this shows the shipped weights are the trained ones, not how well the model generalises
    (its card and `bench/quality.py` say that)."""
    records = seed_records()
    analyses = shipped.analyze([Article(r["text"], id=r["id"]) for r in records])
    found = [{result.label for result in a.labels} for a in analyses]
    assert sum("coordination_centre" in labels for labels in found) >= 4
    for analysis, record in zip(analyses, records, strict=True):
        assert analysis.summary_indices and all(
            analysis.sentences[i] in record["text"] for i in analysis.summary_indices
        )


def test_shipped_model_leaves_unrelated_news_untagged(shipped: Predictor) -> None:
    analyses = shipped.analyze([Article(text) for text in NEGATIVES])
    assert sum(bool(a.labels) for a in analyses) <= 1
