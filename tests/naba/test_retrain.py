"""The retraining loop on the tiny model, end to end: corrections posted through the API, `naba retrain`, a
promotion the running service picks up with no failed request, a worse candidate refused, a rollback, and a
retrain killed with SIGKILL that changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from naba.cli import main as naba
from naba.models.preprocessing import split_sentences
from naba.registry import Registry
from naba.service.app import create_app
from naba.settings import Settings
from naba.training.retrain import Gate, compare
from tests.conftest import NEGATIVES, REPO, seed_records, write_jsonl
from tests.service.live_server import live_server

TINY = ["--max-length", "64", "--window-overlap", "16", "--per_device_train_batch_size", "4", "--seed", "0",
        "--disable_tqdm", "true"]  # fmt: skip


def tiny_args(epochs: int, learning_rate: float) -> list[str]:
    return [*TINY, "--num_train_epochs", str(epochs), "--learning_rate", str(learning_rate)]


@pytest.fixture
def loop(tmp_path: Path, model_dir: Path) -> Iterator[tuple[Registry, str, str, Path]]:
    """A registry serving the tiny model (test-1), a live service following it, and an evaluation file."""
    registry = Registry(tmp_path / "registry")
    registry.add(model_dir)
    registry.promote("test-1", by="test", reason="first")
    database = f"sqlite:///{tmp_path / 'naba.sqlite3'}"
    evaluation = write_jsonl(
        tmp_path / "eval.jsonl",
        [*seed_records(), *({"id": f"e{i}", "text": t, "labels": []} for i, t in enumerate(NEGATIVES[:3]))],
    )
    settings = Settings(
        model_dir=registry.current_link, device="cpu", watch_model_s=0.05, database_url=database
    )
    with live_server(create_app(settings)) as url:
        yield registry, url, database, evaluation


def excerpts() -> list[dict]:
    """The seeds' first three sentences: articles of their own (not in the evaluation set), same topics."""
    return [{"text": " ".join(split_sentences(r["text"])[:3]), "labels": r["labels"]} for r in seed_records()]


def post_corrections(url: str, agree_with_the_seeds: bool) -> None:
    """The analysts' corrections: the last three negatives carry no label, and the seed excerpts carry their
    seed's labels, or (when the analysts are wrong) none."""
    rows = [{"text": t, "labels": []} for t in NEGATIVES[3:]]
    rows += [{**r, "labels": r["labels"] if agree_with_the_seeds else []} for r in excerpts()]
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:
        model = client.get("/v1/model").json()
        for row in rows:
            body = {**row, "model": {"name": model["name"], "version": model["version"]}}
            assert client.post("/v1/feedback", json=body).status_code == 201


def served(url: str) -> str:
    return httpx.get(f"{url}/v1/model", trust_env=False, timeout=30).json()["version"]


def retrain_args(registry: Registry, database: str, evaluation: Path, *more: str) -> list[str]:
    return ["retrain", "--registry", str(registry.root), "--eval", str(evaluation), "--database-url", database,
            *more]  # fmt: skip


def test_promote_under_load_refuse_a_worse_candidate_and_roll_back(
    loop: tuple[Registry, str, str, Path],
) -> None:
    registry, url, database, evaluation = loop
    post_corrections(url, agree_with_the_seeds=True)
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:  # clients keep asking while the model is swapped
        with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:
            while not stop.is_set():
                response = client.post("/v1/analyze", json={"text": NEGATIVES[0]})
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        loose = ["--tolerance", "1", "--label-tolerance", "1"]  # this test is about the loop, not the gain
        assert naba(retrain_args(registry, database, evaluation, *loose, *tiny_args(1, 1e-4))) == 0
        promoted = registry.current()
        assert promoted != "test-1" and promoted in registry.versions()
        deadline = time.monotonic() + 60
        while served(url) != promoted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert served(url) == promoted
    finally:
        stop.set()
        worker.join()
    assert failures == []

    # Wrong corrections now say the excerpts carry no label (each replaces the earlier one of its article), and
    # the candidate learns to tag nothing: worse on the evaluation set's seeds, refused by the strict gate.
    post_corrections(url, agree_with_the_seeds=False)
    strict = ["--tolerance", "0.01", "--label-tolerance", "0.05"]
    history = list(registry.history())
    code = naba(retrain_args(registry, database, evaluation, *strict, *tiny_args(30, 3e-3)))
    assert code == 4 and registry.current() == promoted and list(registry.history()) == history

    assert (
        naba(["models", "rollback", "--registry", str(registry.root), "--reason", "analysts complained"]) == 0
    )
    assert registry.current() == "test-1"
    deadline = time.monotonic() + 60
    while served(url) != "test-1" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served(url) == "test-1"
    assert [e.action for e in registry.history()][-1] == "rolled_back"


def test_a_retrain_killed_mid_way_changes_nothing(loop: tuple[Registry, str, str, Path]) -> None:
    registry, url, database, evaluation = loop
    post_corrections(url, agree_with_the_seeds=True)
    before = (registry.versions(), registry.current(), list(registry.history()))
    command = [
        sys.executable,
        "-m",
        "naba.cli",
        *retrain_args(registry, database, evaluation, *tiny_args(200, 1e-4)),
    ]
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(registry.root.glob(".retrain-*/corrections.jsonl")) and time.monotonic() < deadline:
            assert child.poll() is None, "retrain ended before it could be killed"
            time.sleep(0.05)
        time.sleep(1.0)  # into training
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert (registry.versions(), registry.current(), list(registry.history())) == before
    assert served(url) == "test-1"
    # The next run clears what the killed one left, and still refuses to promote past a strict gate.
    impossible = ["--tolerance", "-1"]
    assert naba(retrain_args(registry, database, evaluation, *impossible, *tiny_args(1, 1e-4))) == 4
    assert list(registry.root.glob(".retrain-*")) == [] and registry.current() == "test-1"


def test_the_gate_judges_macro_f1_and_every_label() -> None:
    def metrics(macro: float, **f1: float) -> dict:
        return {"macro_f1": macro, "per_label": {k: {"f1": v} for k, v in f1.items()}}

    gate = Gate(macro_f1_tolerance=0.01, label_tolerance=0.05)
    assert compare(metrics(0.80, a=0.8, b=0.8), metrics(0.795, a=0.77, b=0.82), gate).promote
    refused = compare(metrics(0.80, a=0.8, b=0.8), metrics(0.80, a=0.70, b=0.90), gate)
    assert not refused.promote and refused.reasons == [
        "a: F1 0.700 is 0.100 below the current 0.800 (tolerance 0.05)"
    ]
    assert not compare(metrics(0.80, a=0.8), metrics(0.78, a=0.8), gate).promote
    assert "lost this label" in compare(metrics(0.8, a=0.8, b=0.8), metrics(0.9, a=0.9), gate).reasons[0]
