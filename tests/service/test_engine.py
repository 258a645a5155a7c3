"""`InferenceEngine`: runs the predictor on its one worker thread, keeps order, checks results, closes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from models.errors import ModelNotReadyError, NabaError
from models.results import Analysis, Article
from service.engine import InferenceEngine
from tests.service.fakes import ECONOMY_TEXT, POLITICS_TEXT, FakePredictor


def test_analyze_runs_on_worker_thread_and_keeps_order() -> None:
    predictor = FakePredictor()
    engine = InferenceEngine(predictor)  # type: ignore[arg-type]
    articles = [Article(POLITICS_TEXT, id="p"), Article(ECONOMY_TEXT, id="e")]

    async def run() -> list[Analysis]:
        await engine.warm_up()
        return await engine.analyze(articles, summary_sentences=1)

    try:
        results = asyncio.run(run())
    finally:
        engine.close()
    assert [r.labels[0].label for r in results] == ["politics", "economy"]
    assert predictor.calls[-1] == (articles, 1)
    assert len(set(predictor.threads)) == 1 and predictor.threads[0].startswith("naba-inference")


def test_analyze_refuses_wrong_result_count() -> None:
    class DropsOne(FakePredictor):
        def analyze(
            self, articles: Sequence[Article], summary_sentences: int | None = None
        ) -> list[Analysis]:
            return super().analyze(articles, summary_sentences)[:-1]

    engine = InferenceEngine(DropsOne())  # type: ignore[arg-type]
    try:
        with pytest.raises(NabaError, match="returned 1 results for 2 articles"):
            asyncio.run(engine.analyze([Article(ECONOMY_TEXT), Article(POLITICS_TEXT)], None))
    finally:
        engine.close()


def test_closed_engine_is_not_ready() -> None:
    engine = InferenceEngine(FakePredictor())  # type: ignore[arg-type]
    engine.close()
    with pytest.raises(ModelNotReadyError):
        asyncio.run(engine.analyze([Article(ECONOMY_TEXT)], None))
