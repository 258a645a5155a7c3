"""The service over a real (tiny) trained model: the same predictor the batch script and evaluation use."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from naba.models.onnx_backend import export_onnx
from naba.models.preprocessing import split_sentences
from naba.service.app import create_app
from naba.settings import Settings
from tests.conftest import NEGATIVES, seed_records
from tests.service.fakes import wait_until_loaded


@pytest.fixture(scope="module")
def real_client(model_dir: Path) -> Iterator[TestClient]:
    """The app loading the artifact from disk, as `naba serve` does."""
    with TestClient(create_app(Settings(model_dir=model_dir, device="cpu"))) as client:
        wait_until_loaded(client)
        yield client


def test_naba_dtype_sets_the_precision_the_service_runs_and_reports(model_dir: Path) -> None:
    with TestClient(create_app(Settings(model_dir=model_dir, device="cpu", dtype="bfloat16"))) as client:
        wait_until_loaded(client)
        assert client.get("/v1/model").json()["dtype"] == "bfloat16"
        response = client.post("/v1/analyze", json={"text": seed_records()[0]["text"]})
        assert response.status_code == 200 and response.json()["summary"]


@pytest.fixture(scope="module")
def fp32_exported(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny model with an fp32 ONNX export and no int8 one (the shared model stays untouched)."""
    copy = Path(shutil.copytree(model_dir, tmp_path_factory.mktemp("onnx") / "tiny"))
    export_onnx(copy)
    return copy


def served_backend(settings: Settings) -> str:
    with TestClient(create_app(settings)) as client:
        wait_until_loaded(client)
        backend: str = client.get("/v1/model").json()["backend"]
        return backend


def test_naba_backend_torch_is_served_over_an_onnx_export(fp32_exported: Path) -> None:
    assert served_backend(Settings(model_dir=fp32_exported, device="cpu")) == "onnx"  # auto takes the export
    assert served_backend(Settings(model_dir=fp32_exported, device="cpu", backend="torch")) == "torch"


def test_naba_quantize_int8_without_an_int8_export_refuses_to_serve(
    fp32_exported: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Asked for int8, the service stays unready rather than fall back to a slower encoder."""
    settings = Settings(model_dir=fp32_exported, device="cpu", quantize="int8")
    with caplog.at_level(logging.ERROR), TestClient(create_app(settings)) as client:
        wait_until_loaded(client)
        assert client.get("/readyz").status_code == 503
        assert client.post("/v1/analyze", json={"text": NEGATIVES[0]}).status_code == 503
    assert any("model not loaded" in r.getMessage() and "int8" in r.getMessage() for r in caplog.records)


def test_ready_after_loading_the_artifact(real_client: TestClient) -> None:
    assert real_client.get("/readyz").status_code == 200
    info = real_client.get("/v1/model").json()
    assert info["labels"] == ["attack", "coordination_centre", "joint_operation"]
    assert info["version"] == "test-1"


def test_analyze_returns_tags_evidence_and_summary(real_client: TestClient) -> None:
    text = seed_records()[0]["text"]
    response = real_client.post("/v1/analyze", json={"text": text, "title": "عنوان", "summary_sentences": 2})
    assert response.status_code == 200
    body = response.json()
    sentences = split_sentences(text)
    assert set(body["scores"]) == {"attack", "coordination_centre", "joint_operation"}
    thresholds = real_client.get("/v1/model").json()["thresholds"]
    assert {r["label"] for r in body["labels"]} == {
        k for k, v in body["scores"].items() if v >= thresholds[k]
    }
    assert all(e in sentences for r in body["labels"] for e in r["evidence"])
    assert len(body["summary_indices"]) == 2
    assert body["summary"] == " ".join(sentences[i] for i in body["summary_indices"])
    assert body["model"] == {"name": "naba", "version": "test-1"}


def test_batch_matches_single_calls(real_client: TestClient) -> None:
    articles = [{"id": f"a{i}", "text": t} for i, t in enumerate(NEGATIVES[:3])]
    batch = real_client.post("/v1/analyze/batch", json={"articles": articles}).json()["results"]
    assert [r["id"] for r in batch] == ["a0", "a1", "a2"]
    for article, result in zip(articles, batch, strict=True):
        single = real_client.post("/v1/analyze", json={"text": article["text"]}).json()
        assert single["summary_indices"] == result["summary_indices"]
        assert single["scores"] == pytest.approx(result["scores"], abs=1e-5)


def test_bad_input_gets_4xx_and_the_service_keeps_serving(real_client: TestClient) -> None:
    assert real_client.post("/v1/analyze", json={"text": "   "}).status_code == 422
    assert real_client.post("/v1/analyze", json={"text": "no arabic here"}).status_code == 422
    assert (
        real_client.post(
            "/v1/analyze", content=b"{oops", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert real_client.post("/v1/analyze", json={"text": "ب" * 100_001}).status_code == 413
    assert real_client.post("/v1/analyze", json={"text": NEGATIVES[0]}).status_code == 200
