"""`InferenceEngine`: micro-batching, the token budget, backpressure, timeouts, swaps and shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from naba.models.errors import (
    BatchTooLargeError,
    ModelNotReadyError,
    OverloadedError,
    RequestTimeoutError,
)
from naba.models.results import Analysis, Article, ResultOptions
from naba.service.engine import BatchingConfig, InferenceEngine
from naba.settings import Settings
from tests.service.fakes import (
    ECONOMY_TEXT,
    POLITICS_TEXT,
    SPORTS_TEXT,
    FakeEncoded,
    FakePredictor,
    GatedPredictor,
    SlowEncodePredictor,
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Yield to the event loop until `condition()` holds; fail after `timeout` s rather than hang the suite."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:g} s")
        await asyncio.sleep(0.005)


async def _wait_entered(predictor: GatedPredictor) -> None:
    if not await asyncio.to_thread(predictor.entered.wait, 10):
        raise AssertionError("the worker never entered the model")


def test_results_keep_order_and_run_on_the_worker_thread() -> None:
    predictor = FakePredictor()
    engine = InferenceEngine(predictor)  # type: ignore[arg-type]
    articles = [Article(POLITICS_TEXT, id="p"), Article(ECONOMY_TEXT, id="e")]
    try:
        results = run(engine.analyze(articles, ResultOptions(summary_sentences=1)))
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
        first = asyncio.create_task(engine.analyze([Article(texts[0])]))
        await _wait_entered(predictor)  # the worker is busy with the first request
        rest = [asyncio.create_task(engine.analyze([Article(t)])) for t in texts[1:]]
        await wait_for(lambda: engine.queue_depth == len(rest))
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
        first = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)]))
        await _wait_entered(predictor)
        rest = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)] * 5))
        await wait_for(lambda: engine.queue_depth == 5)
        predictor.gate.set()
        await asyncio.gather(first, rest)

    try:
        run(scenario())
    finally:
        engine.close()
    assert [len(call) for call in predictor.calls] == [1, 2, 2, 1]


def test_the_batch_request_limit_does_not_cap_model_calls() -> None:
    """NABA_MAX_BATCH_ARTICLES limits a batch request; concurrent requests still share one model call."""
    predictor = GatedPredictor()
    settings = Settings(max_batch_articles=1, max_wait_ms=0)
    engine = InferenceEngine(predictor, BatchingConfig.from_settings(settings))  # type: ignore[arg-type]

    async def scenario() -> None:
        first = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)]))
        await _wait_entered(predictor)
        rest = [asyncio.create_task(engine.analyze([Article(SPORTS_TEXT)])) for _ in range(5)]
        await wait_for(lambda: engine.queue_depth == 5)
        predictor.gate.set()
        await asyncio.gather(first, *rest)

    try:
        run(scenario())
    finally:
        engine.close()
    assert [len(call) for call in predictor.calls] == [1, 5]


def _held_while_tokenising(max_wait_ms: float) -> list[int]:
    """Sizes of the model calls for two requests: one queued while the other is still being tokenised."""
    predictor = SlowEncodePredictor(marker=POLITICS_TEXT)
    engine = InferenceEngine(predictor, BatchingConfig.from_settings(Settings(max_wait_ms=max_wait_ms)))  # type: ignore[arg-type]

    async def scenario() -> None:
        held = asyncio.create_task(engine.analyze([Article(POLITICS_TEXT)]))
        if not await asyncio.to_thread(predictor.encoding.wait, 10):
            raise AssertionError("the held request never started tokenising")
        ready = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)]))
        if max_wait_ms:  # queued, and waiting for company
            await wait_for(lambda: engine.queue_depth == 1)
        else:  # run alone, before the held request could join it
            await wait_for(lambda: len(predictor.calls) == 1)
        predictor.release.set()
        await asyncio.gather(held, ready)

    try:
        run(scenario())
    finally:
        predictor.release.set()
        engine.close()
    return [len(call) for call in predictor.calls]


def test_max_wait_ms_lets_a_request_still_tokenising_share_the_model_call() -> None:
    # The queued request waits (up to 10 s, far longer than the test) for the one still being tokenised.
    assert _held_while_tokenising(max_wait_ms=10_000) == [2]
    # Without the wait, the queued request runs alone.
    assert _held_while_tokenising(max_wait_ms=0) == [1, 1]


def test_a_lone_request_does_not_wait_max_wait_ms() -> None:
    """With nothing else on its way, waiting for company would only add latency."""
    predictor = FakePredictor()
    engine = InferenceEngine(predictor, BatchingConfig.from_settings(Settings(max_wait_ms=5_000)))  # type: ignore[arg-type]
    try:
        start = time.monotonic()
        run(engine.analyze([Article(ECONOMY_TEXT)]))
        elapsed = time.monotonic() - start
    finally:
        engine.close()
    assert elapsed < 2, f"a lone request took {elapsed:.2f} s with max_wait_ms=5000"


def test_more_articles_than_the_queue_holds_are_refused_for_good() -> None:
    """An idle engine cannot make room for them either: 413, not a 503 that invites retries forever."""
    predictor = FakePredictor()
    engine = InferenceEngine(predictor, BatchingConfig(max_queue=4))  # type: ignore[arg-type]
    try:
        with pytest.raises(BatchTooLargeError, match="5 articles in one call; the server takes at most 4"):
            run(engine.analyze([Article(ECONOMY_TEXT)] * 5))
        assert len(run(engine.analyze([Article(ECONOMY_TEXT)] * 4))) == 4
    finally:
        engine.close()
    assert [len(call) for call in predictor.calls] == [4]


def test_full_queue_refuses_at_once() -> None:
    predictor = GatedPredictor()
    engine = InferenceEngine(predictor, BatchingConfig(max_queue=4, max_wait_ms=0))  # type: ignore[arg-type]

    async def scenario() -> None:
        first = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)]))
        await _wait_entered(predictor)
        queued = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)] * 3))
        await wait_for(lambda: engine.queue_depth == 3)
        with pytest.raises(OverloadedError, match="busy") as refused:
            await engine.analyze([Article(POLITICS_TEXT)])
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
        tasks = [asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)])) for _ in range(10)]
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
        first = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT, id="slow")]))
        await _wait_entered(predictor)
        with pytest.raises(RequestTimeoutError):
            await engine.analyze([Article(POLITICS_TEXT, id="late")])
        # Held on the gate since before "late" came, the first request is past its deadline too.
        with pytest.raises(RequestTimeoutError):
            await first
        predictor.gate.set()
        # The worker finishes the held batch, then drops "late" from the queue without running it.
        await wait_for(lambda: len(predictor.calls) == 1 and engine.queue_depth == 0)
        # A generous deadline for the next request: it shows the worker goes on, whatever the machine's load.
        engine.config = dataclasses.replace(engine.config, request_timeout_s=30)
        assert (await engine.analyze([Article(SPORTS_TEXT, id="next")]))[0].labels[0].label == "sports"

    try:
        run(scenario())
    finally:
        engine.close()
    assert [[a.id for a in call] for call in predictor.calls] == [["slow"], ["next"]]
    assert engine.in_progress == 0


def test_the_timeout_covers_tokenising() -> None:
    """A long text can take longer to tokenise than to run: the deadline starts when the call does."""
    predictor = SlowEncodePredictor(marker=ECONOMY_TEXT)
    engine = InferenceEngine(predictor, BatchingConfig(request_timeout_s=0.05, max_wait_ms=0))  # type: ignore[arg-type]

    async def scenario() -> None:
        try:
            with pytest.raises(RequestTimeoutError, match=r"no result within 0\.05 s"):
                await engine.analyze([Article(ECONOMY_TEXT)])  # held in encode until released
            assert engine.in_progress == 0
        finally:
            predictor.release.set()
        assert len(await engine.analyze([Article(SPORTS_TEXT)])) == 1

    try:
        run(scenario())
    finally:
        engine.close()
    assert [[a.text for a in call] for call in predictor.calls] == [[SPORTS_TEXT]]


def test_a_timeout_error_of_the_predictor_is_not_the_deadline() -> None:
    class TimesOut(FakePredictor):
        def score(self, encoded: Sequence[FakeEncoded]) -> list[FakeEncoded]:
            raise TimeoutError("the GPU driver timed out")

    engine = InferenceEngine(TimesOut())  # type: ignore[arg-type]
    try:
        with pytest.raises(TimeoutError, match="GPU driver"):
            run(engine.analyze([Article(ECONOMY_TEXT)]))
    finally:
        engine.close()


def test_swap_serves_new_requests_on_the_new_model_and_queued_ones_on_their_own() -> None:
    old, new = GatedPredictor("1"), FakePredictor()
    engine = InferenceEngine(old, BatchingConfig(max_wait_ms=0))  # type: ignore[arg-type]

    async def scenario() -> tuple[list[Analysis], list[Analysis], list[Analysis]]:
        first = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)]))
        await _wait_entered(old)
        queued = asyncio.create_task(engine.analyze([Article(POLITICS_TEXT)]))
        await wait_for(lambda: engine.queue_depth == 1)
        assert engine.swap(new) is old  # type: ignore[arg-type]
        after = asyncio.create_task(engine.analyze([Article(SPORTS_TEXT)]))
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
            run(engine.analyze([Article(POLITICS_TEXT)]))
        assert run(engine.analyze([Article(ECONOMY_TEXT)]))[0].labels[0].label == "economy"
    finally:
        engine.close()


def test_close_fails_queued_requests_and_refuses_new_ones() -> None:
    predictor = GatedPredictor()
    engine = InferenceEngine(predictor, BatchingConfig(max_wait_ms=0))  # type: ignore[arg-type]

    async def scenario() -> None:
        first = asyncio.create_task(engine.analyze([Article(ECONOMY_TEXT)]))
        await _wait_entered(predictor)
        queued = asyncio.create_task(engine.analyze([Article(POLITICS_TEXT)]))
        await wait_for(lambda: engine.queue_depth == 1)
        closing = asyncio.create_task(asyncio.to_thread(engine.close))
        await wait_for(lambda: engine.closed)
        predictor.gate.set()
        await closing
        with pytest.raises(ModelNotReadyError):
            await queued
        assert len(await first) == 1  # the batch in progress finished
        with pytest.raises(ModelNotReadyError):
            await engine.analyze([Article(SPORTS_TEXT)])

    run(scenario())


def test_requests_batched_together_keep_their_own_options() -> None:
    predictor = GatedPredictor()
    engine = InferenceEngine(predictor, BatchingConfig(max_wait_ms=0))  # type: ignore[arg-type]
    long_text = " ".join([ECONOMY_TEXT] * 2)  # six sentences

    async def scenario() -> list[list[Analysis]]:
        first = asyncio.create_task(engine.analyze([Article(SPORTS_TEXT)]))
        await _wait_entered(predictor)
        strict = asyncio.create_task(
            engine.analyze([Article(ECONOMY_TEXT)], ResultOptions(1, operating_point="precision"))
        )
        loose = asyncio.create_task(
            engine.analyze(
                [Article(long_text)],
                ResultOptions(summary_ratio=0.5, max_summary_sentences=2, operating_point="recall"),
            )
        )
        await wait_for(lambda: engine.queue_depth == 2)
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
