"""The inference engine: the only code that calls the predictor, always on one dedicated worker thread.

Route handlers `await engine.analyze(...)`; the call is handed to a single-thread executor, so the event loop
never blocks on torch and calls reach the model one at a time, in arrival order. The interface is meant to
stay as it is when dynamic micro-batching (a queue that merges concurrent requests into one forward pass)
replaces the executor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from models.errors import ModelNotReadyError, NabaError
from models.predictor import Predictor
from models.results import Analysis, Article, ModelRef
from service.metrics import ARTICLES, INFERENCE_BATCH_SIZE, INFERENCE_DURATION

logger = logging.getLogger(__name__)

T = TypeVar("T")


class InferenceEngine:
    """Owns a loaded predictor and runs every call to it on one worker thread.

    Args:
        predictor: A loaded predictor (or any object with the same interface). The engine does not load it:
            the app's lifespan does, so loading failures are reported before an engine exists.
    """

    def __init__(self, predictor: Predictor) -> None:
        self._predictor = predictor
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="naba-inference")
        self._closed = False

    @property
    def ref(self) -> ModelRef:
        """Name and version of the served model."""
        return self._predictor.ref

    @property
    def info(self) -> dict[str, Any]:
        """The artifact's description, as `Predictor.info` gives it."""
        return self._predictor.info

    async def warm_up(self) -> None:
        """Run the predictor's warm-up on the inference thread, where real requests will run."""
        await self._submit(self._predictor.warm_up)

    async def analyze(self, articles: Sequence[Article], summary_sentences: int | None) -> list[Analysis]:
        """Analyse already validated articles; results come back in input order.

        Args:
            articles: Articles that passed `validate_text`; the engine does not check them again.
            summary_sentences: Sentences per summary, or None for the model's default.

        Returns:
            One `Analysis` per article, in order.

        Raises:
            ModelNotReadyError: The engine has been closed.
            NabaError: The predictor returned a different number of results than articles.
        """
        INFERENCE_BATCH_SIZE.observe(len(articles))
        ARTICLES.inc(len(articles))
        results = await self._submit(self._run, list(articles), summary_sentences)
        if len(results) != len(articles):
            raise NabaError(f"the predictor returned {len(results)} results for {len(articles)} articles")
        return results

    def close(self) -> None:
        """Stop taking work, drop queued calls and wait for the one in progress to finish."""
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _run(self, articles: list[Article], summary_sentences: int | None) -> list[Analysis]:
        """The worker-thread side of `analyze`: time the predictor call alone, without queueing."""
        start = time.perf_counter()
        try:
            return self._predictor.analyze(articles, summary_sentences=summary_sentences)
        finally:
            INFERENCE_DURATION.observe(time.perf_counter() - start)

    async def _submit(self, fn: Callable[..., T], *args: Any) -> T:
        """Queue `fn(*args)` on the inference thread and wait for it without blocking the event loop."""
        if self._closed:
            raise ModelNotReadyError("the service is shutting down")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
