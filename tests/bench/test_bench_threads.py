"""Smoke test of `bench/threads.py`: both timings run on a tiny model, the worker one on another thread."""

from __future__ import annotations

import threading

import pytest

from bench.threads import on_a_thread, pass_times
from naba.models.results import Article
from tests.conftest import seed_records


def test_pass_times_on_main_and_worker_thread(predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    encoded = [predictor.encode(Article(text=r["text"])) for r in seed_records()[:3]]
    seen: list[str] = []
    score = predictor.score

    def recording(items):
        seen.append(threading.current_thread().name)
        return score(items)

    monkeypatch.setattr(predictor, "score", recording)
    assert pass_times(predictor, encoded) > 0
    assert on_a_thread(predictor, encoded) > 0
    assert seen == ["MainThread"] * 3 + ["bench-worker"] * 3
