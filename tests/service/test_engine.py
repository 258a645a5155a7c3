"""`InferenceEngine`: micro-batching, the token budget, backpressure, timeouts, swaps and shutdown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from models.errors import InvalidInputError, ModelNotReadyError, OverloadedError, RequestTimeoutError
from models.results import Analysis, Article, ModelRef
from service.engine import BatchingConfig, InferenceEngine
from tests.service.fakes import ECONOMY_TEXT, POLITICS_TEXT, SPORTS_TEXT, FakeEncoded, FakePredictor

T = TypeVar("T")


class GatedPredictor(FakePredictor):
    """Its first model call blocks until `gate` is set, so tests can pile work up behind it."""

    def __init__(self, version: str = "0.0.1") -> None:
        super().__init__()
        self.ref = ModelRef(name="gated", version=version)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def score(self, encoded: Sequence[FakeEncoded]) -> list[FakeEncoded]:
        self.entered.set()
        if not self.gate.wait(timeout=10):
            raise RuntimeError("test never opened the gate")
        return super().score(encoded)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _wait_entered(predictor: GatedPredictor) -> None:
    await asyncio.to_thread(predictor.entered.wait, 10)


def test_results_keep_order_and_run_on_the_worker_thread() -> None:
    predictor = FakePredictor()
    engine = InferenceEngine(predictor)  # type: ignore[arg-type]
    articles = [Article(POLITICS_TEXT, id="p"), Article(ECONOMY_TEXT, id="e")]
    try:
        results = run(engine.analyze(articles, summary_sentences=1))
    finally:
        engine.close()
    assert [r.labels[0].label for r in results] == ["politics", "economy"]
    assert predictor.calls == [articles]
    assert predictor.threads == ["naba-inference"]


def test_concurrent_requests_share_one_model_call() -> None:
    predictor = GatedPredictor()
    engine = InferenceEngine(predictor, BatchingConfig(max_wait_ms=0))  # type: ignore[arg-type]
    texts = [ECONOMY_TEXT, POLITICS_TEXT, SPORTS_TEXT] * 3

    async def scenario() -> list[list[Analysis]]:
        first = asyncio.create_task(engine.analyze([Article(texts[0])], None))
        await _wait_entered(predictor)  # the worker is busy with the first request
        rest = [asyncio.create_task(engine.analyze([Article(t)], None)) for t in texts[1:]]
        while engine.queue_depth < len(rest):
            await asyncio.sleep(0.01)
        predictor.gate.set()
        return await asyncio.gather(first, *rest)

    try:
        results = run(scenario())
    finally:
        engine.close()
    assert len(results) == len(texts)
    assert [len(call) for call in predictor.calls] == [1, len(texts) - 1]
    assert [r[0].sentences[0] for r in results] == [t.split(".")[0] + "." for t in texts]


def test_token_budget_splits_batches() -> None:
    predictor = GatedPredictor()
    budget = 2 * len(ECONOMY_TEXT)
    engine = InferenceEngine(predictor, BatchingConfig(max_batch_tokens=budget, max_wait_ms=0))  # type: ignore[arg-type]

    async def scenario() -> None:
        first = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)], None))
        await _wait_entered(predictor)
        rest = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)] * 5, None))
        while engine.queue_depth < 5:
            await asyncio.sleep(0.01)
        predictor.gate.set()
        await asyncio.gather(first, rest)

    try:
        run(scenario())
    finally:
        engine.close()
    assert [len(call) for call in predictor.calls] == [1, 2, 2, 1]


def test_full_queue_refuses_at_once() -> None:
    predictor = GatedPredictor()
    engine = InferenceEngine(predictor, BatchingConfig(max_queue=4, max_wait_ms=0))  # type: ignore[arg-type]

    async def scenario() -> None:
        first = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)], None))
        await _wait_entered(predictor)
        queued = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)] * 3, None))
        while engine.queue_depth < 3:
            await asyncio.sleep(0.01)
        with pytest.raises(OverloadedError, match="busy") as refused:
            await engine.analyze([Article(POLITICS_TEXT)], None)
        assert refused.value.retry_after >= 1
        predictor.gate.set()
        assert len(await queued) == 3
        await first

    try:
        run(scenario())
    finally:
        engine.close()


def test_concurrent_requests_cannot_overfill_the_engine() -> None:
    predictor = GatedPredictor()
    engine = InferenceEngine(predictor, BatchingConfig(max_queue=4, max_wait_ms=0))  # type: ignore[arg-type]

    async def scenario() -> list[object]:
        tasks = [asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)], None)) for _ in range(10)]
        await _wait_entered(predictor)
        assert engine.in_progress == 4
        predictor.gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        results = run(scenario())
    finally:
        engine.close()
    assert sum(isinstance(r, OverloadedError) for r in results) == 6
    assert sum(isinstance(r, list) for r in results) == 4
    assert engine.in_progress == 0


def test_timed_out_request_is_dropped_from_the_queue() -> None:
    predictor = GatedPredictor()
    engine = InferenceEngine(predictor, BatchingConfig(request_timeout_s=0.2, max_wait_ms=0))  # type: ignore[arg-type]

    async def scenario() -> None:
        first = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT, id="slow")], None))
        await _wait_entered(predictor)
        with pytest.raises(RequestTimeoutError):
            await engine.analyze([Article(POLITICS_TEXT, id="late")], None)
        predictor.gate.set()
        with pytest.raises(RequestTimeoutError):  # the first one waited on the gate too long as well
            await first
        assert (await engine.analyze([Article(SPORTS_TEXT, id="next")], None))[0].labels[0].label == "sports"

    try:
        run(scenario())
    finally:
        engine.close()
    seen = [a.id for call in predictor.calls for a in call]
    assert "late" not in seen and seen[-1] == "next"


def test_swap_serves_new_requests_on_the_new_model_and_queued_ones_on_their_own() -> None:
    old, new = GatedPredictor("1"), FakePredictor()
    engine = InferenceEngine(old, BatchingConfig(max_wait_ms=0))  # type: ignore[arg-type]

    async def scenario() -> tuple[list[Analysis], list[Analysis], list[Analysis]]:
        first = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)], None))
        await _wait_entered(old)
        queued = asyncio.create_task(engine.analyze([Article(POLITICS_TEXT)], None))
        while engine.queue_depth < 1:
            await asyncio.sleep(0.01)
        assert engine.swap(new) is old  # type: ignore[arg-type]
        after = asyncio.create_task(engine.analyze([Article(SPORTS_TEXT)], None))
        old.gate.set()
        return await first, await queued, await after

    try:
        first, queued, after = run(scenario())
    finally:
        engine.close()
    assert first[0].model.name == "gated" and queued[0].model.name == "gated"
    assert after[0].model.name == "fake-topics"
    assert engine.ref.name == "fake-topics"


def test_a_failing_batch_reaches_its_callers_and_the_worker_goes_on() -> None:
    class FailsOnPolitics(FakePredictor):
        def score(self, encoded: Sequence[FakeEncoded]) -> list[FakeEncoded]:
            if any(e.article.text == POLITICS_TEXT for e in encoded):
                raise ValueError("bad batch")
            return super().score(encoded)

    engine = InferenceEngine(FailsOnPolitics())  # type: ignore[arg-type]
    try:
        with pytest.raises(ValueError, match="bad batch"):
            run(engine.analyze([Article(POLITICS_TEXT)], None))
        assert run(engine.analyze([Article(ECONOMY_TEXT)], None))[0].labels[0].label == "economy"
    finally:
        engine.close()


def test_close_fails_queued_requests_and_refuses_new_ones() -> None:
    predictor = GatedPredictor()
    engine = InferenceEngine(predictor, BatchingConfig(max_wait_ms=0))  # type: ignore[arg-type]

    async def scenario() -> None:
        first = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)], None))
        await _wait_entered(predictor)
        queued = asyncio.create_task(engine.analyze([Article(POLITICS_TEXT)], None))
        while engine.queue_depth < 1:
            await asyncio.sleep(0.01)
        closing = asyncio.create_task(asyncio.to_thread(engine.close))
        while not engine.closed:
            await asyncio.sleep(0.01)
        predictor.gate.set()
        await closing
        with pytest.raises(ModelNotReadyError):
            await queued
        assert len(await first) == 1  # the batch in progress finished
        with pytest.raises(ModelNotReadyError):
            await engine.analyze([Article(SPORTS_TEXT)], None)

    run(scenario())


def test_requests_batched_together_keep_their_own_options() -> None:
    predictor = GatedPredictor()
    engine = InferenceEngine(predictor, BatchingConfig(max_wait_ms=0))  # type: ignore[arg-type]
    long_text = " ".join([ECONOMY_TEXT] * 2)  # six sentences

    async def scenario() -> list[list[Analysis]]:
        first = asyncio.create_task(engine.analyze([Article(SPORTS_TEXT)], None))
        await _wait_entered(predictor)
        strict = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)], 1, operating_point="precision"))
        loose = asyncio.create_task(
            engine.analyze(
                [Article(long_text)], summary_ratio=0.5, max_summary_sentences=2, operating_point="recall"
            )
        )
        while engine.queue_depth < 2:
            await asyncio.sleep(0.01)
        predictor.gate.set()
        return await asyncio.gather(first, strict, loose)

    try:
        _, [strict], [loose] = run(scenario())
    finally:
        engine.close()
    assert [len(call) for call in predictor.calls] == [1, 2]  # the two shared one model call
    assert strict.labels == [] and strict.summary_indices == [0]
    assert {r.label for r in loose.labels} == {"economy", "politics", "sports"}
    assert loose.summary_indices == [0, 1]  # ceil(0.5 * 6) = 3, capped at 2
    options = {o["text"]: o for o in predictor.options}
    assert options[ECONOMY_TEXT]["operating_point"] == "precision"
    assert options[long_text]["summary_ratio"] == 0.5


def test_bad_options_are_refused_before_anything_is_queued() -> None:
    predictor = FakePredictor()
    engine = InferenceEngine(predictor)  # type: ignore[arg-type]
    try:
        with pytest.raises(InvalidInputError, match="not both"):
            run(engine.analyze([Article(ECONOMY_TEXT)], 2, summary_ratio=0.5))
        with pytest.raises(InvalidInputError, match="operating_point"):
            run(engine.analyze([Article(ECONOMY_TEXT)], operating_point="lenient"))  # type: ignore[arg-type]
    finally:
        engine.close()
    assert predictor.calls == [] and engine.in_progress == 0
