"""The inference engine: a bounded queue, a token-budget micro-batcher and one worker thread that owns the model.

Route handlers `await engine.analyze(...)`. Each article is tokenised off the event loop and queued with the
predictor that encoded it. The worker thread takes the oldest queued article, waits at most `max_wait_ms` for
company while other requests are still being tokenised, and runs every queued article of the same predictor
that fits the token budget in one call, so concurrent requests share forward passes (the predictor sorts them
by length to cut padding). Each article keeps its own request's options (summary length, operating point),
applied in the result stage, so requests that share a forward pass never share options. Results go back to
each caller's future.

A full engine (`max_queue` articles admitted and unanswered) refuses new work at once (`OverloadedError`, 503
with Retry-After) instead of letting latency grow without bound; a call with more articles than `max_queue`
could never be admitted, so it gets `BatchTooLargeError` (413), which a client must not retry. A caller whose
call (tokenising, queueing and inference) takes longer than `request_timeout_s` gets `RequestTimeoutError`
(504); its articles are dropped from the queue. `swap` replaces the predictor atomically: queued articles
finish on the model that encoded them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from naba.models.encoding import EncodedArticle
from naba.models.errors import BatchTooLargeError, ModelNotReadyError, OverloadedError, RequestTimeoutError
from naba.models.predictor import Predictor
from naba.models.results import DEFAULT_OPTIONS, Analysis, Article, ModelRef, ResultOptions
from naba.service.metrics import (
    ARTICLES,
    BATCH_TOKENS,
    INFERENCE_BATCH_SIZE,
    INFERENCE_DURATION,
    MODEL_INFO,
    QUEUE_DEPTH,
    QUEUE_WAIT,
    TOKENS,
)
from naba.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchingConfig:
    """How the engine groups work; see `naba.settings.Settings` for the operator-facing names.

    A model call takes as many queued articles as fit `max_batch_tokens` (at least one); there is no separate
    article cap, since the queue already bounds them. `NABA_MAX_BATCH_ARTICLES` limits a batch *request*,
    checked by the route, and must not shrink the model calls that concurrent requests share.
    """

    max_batch_tokens: int = 16_384  # window tokens per model call
    max_wait_ms: float = 5.0  # how long the oldest article waits for others to share its batch
    max_queue: int = 256  # articles in progress (queued or running) beyond which new requests are refused
    request_timeout_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchingConfig:
        """The operator's `NABA_*` batching and admission limits."""
        return cls(
            max_batch_tokens=settings.max_batch_tokens,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
            request_timeout_s=settings.request_timeout_s,
        )


@dataclass
class _Item:
    """One queued article, its request's options and where its result goes."""

    predictor: Predictor
    encoded: EncodedArticle
    options: ResultOptions
    future: asyncio.Future[Analysis]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def cost(self) -> int:
        return self.encoded.n_tokens


class InferenceEngine:
    """Owns the served predictor and the worker thread that runs it."""

    def __init__(self, predictor: Predictor, config: BatchingConfig | None = None) -> None:
        self._predictor = predictor
        self.config = config or BatchingConfig()
        self._pending: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._admitted = 0  # articles accepted and not yet answered; only touched on the event loop
        self._encoding = 0  # requests being tokenised, i.e. company on its way to the queue
        self._worker = threading.Thread(target=self._run, name="naba-inference", daemon=True)
        self._worker.start()
        self._publish_model(predictor)

    @property
    def ref(self) -> ModelRef:
        """Name and version of the served model."""
        return self._predictor.ref

    @property
    def info(self) -> dict[str, Any]:
        """The served artifact's description, as `Predictor.info` gives it."""
        return self._predictor.info

    @property
    def queue_depth(self) -> int:
        """Articles encoded and waiting for the model."""
        return len(self._pending)

    @property
    def in_progress(self) -> int:
        """Articles admitted and not yet answered (tokenising, queued or running): at most `max_queue`."""
        return self._admitted

    @property
    def closed(self) -> bool:
        return self._closed

    def swap(self, predictor: Predictor) -> Predictor:
        """Serve `predictor` from now on and return the previous one; queued articles finish on theirs."""
        old, self._predictor = self._predictor, predictor
        self._publish_model(predictor, old)
        logger.info(
            "now serving %s %s (was %s %s)",
            predictor.ref.name,
            predictor.ref.version,
            old.ref.name,
            old.ref.version,
        )
        return old

    async def analyze(
        self, articles: Sequence[Article], options: ResultOptions = DEFAULT_OPTIONS
    ) -> list[Analysis]:
        """Analyse validated articles as `options` ask (every article of this call); results come back in
        input order.

        Raises:
            BatchTooLargeError: more articles than `max_queue`, which no wait would make room for.
            OverloadedError: the queue cannot take these articles now.
            RequestTimeoutError: the results did not come within `request_timeout_s`, tokenising included.
            ModelNotReadyError: the engine is closed.
        """
        if self._closed:
            raise ModelNotReadyError("the service is shutting down")
        if len(articles) > self.config.max_queue:
            raise BatchTooLargeError(
                f"{len(articles)} articles in one call; the server takes at most {self.config.max_queue} "
                "at once (NABA_MAX_QUEUE)"
            )
        # Admission is decided here, on the event loop, before any await: concurrent requests cannot all
        # pass the check and then overfill the queue together.
        if self._admitted + len(articles) > self.config.max_queue:
            raise OverloadedError(
                f"the server is busy ({self._admitted} articles in progress); retry shortly"
            )
        self._admitted += len(articles)
        # The deadline covers the whole wait: a long text can spend longer being tokenised than in the model.
        deadline = asyncio.timeout(self.config.request_timeout_s)
        try:
            async with deadline:
                return await self._analyze(articles, options)
        except TimeoutError:
            if not deadline.expired():  # the predictor's own TimeoutError, not this deadline
                raise
            raise RequestTimeoutError(
                f"no result within {self.config.request_timeout_s:g} s; the server is overloaded"
            ) from None
        finally:
            self._admitted -= len(articles)

    async def _analyze(self, articles: Sequence[Article], options: ResultOptions) -> list[Analysis]:
        predictor = self._predictor
        loop = asyncio.get_running_loop()
        self._encoding += 1
        try:
            encoded = await asyncio.to_thread(lambda: [predictor.encode(a) for a in articles])
            items = [_Item(predictor, e, options, loop.create_future(), loop) for e in encoded]
            with self._cond:
                if self._closed:
                    raise ModelNotReadyError("the service is shutting down")
                self._pending.extend(items)
                QUEUE_DEPTH.set(len(self._pending))
        finally:
            with self._cond:
                self._encoding -= 1
                self._cond.notify()
        ARTICLES.inc(len(items))
        try:
            return list(await asyncio.gather(*(item.future for item in items)))
        finally:  # also when the caller's deadline passed: its articles leave the queue
            for item in items:
                item.future.cancel()  # no-op for finished ones; the worker skips cancelled ones

    def close(self) -> None:
        """Stop the worker after the batch in progress; queued callers get `ModelNotReadyError`."""
        with self._cond:
            self._closed = True
            dropped = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for item in dropped:
            _resolve(item, error=ModelNotReadyError("the service is shutting down"))
        if threading.current_thread() is not self._worker:
            self._worker.join(timeout=30)

    # --- worker thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._process(batch)

    def _next_batch(self) -> list[_Item] | None:
        """Block until work arrives, give the oldest article `max_wait_ms` for company, take what fits."""
        cfg = self.config
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            # Wait for company only while another request is being tokenised: with nothing on its way, waiting
            # would only add latency (a lone request at concurrency 1 never waits).
            deadline = self._pending[0].enqueued + cfg.max_wait_ms / 1000
            while (
                self._encoding
                and not self._closed
                and not self._full(self._pending)
                and time.perf_counter() < deadline
            ):
                self._cond.wait(deadline - time.perf_counter())
            batch: list[_Item] = []
            tokens = 0
            keep: deque[_Item] = deque()
            while self._pending:
                item = self._pending.popleft()
                if item.future.cancelled():  # its caller timed out
                    continue
                fits = not batch or tokens + item.cost <= cfg.max_batch_tokens
                if fits and (not batch or item.predictor is batch[0].predictor):
                    batch.append(item)
                    tokens += item.cost
                else:
                    keep.append(item)
            self._pending = keep
            QUEUE_DEPTH.set(len(self._pending))
        return batch

    def _full(self, pending: deque[_Item]) -> bool:
        return sum(item.cost for item in pending) >= self.config.max_batch_tokens

    def _process(self, batch: list[_Item]) -> None:
        """Score the batch in one predictor call and hand each result to its caller's event loop."""
        if not batch:
            return
        now = time.perf_counter()
        for item in batch:
            QUEUE_WAIT.observe(now - item.enqueued)
        predictor = batch[0].predictor
        tokens = sum(item.cost for item in batch)
        INFERENCE_BATCH_SIZE.observe(len(batch))
        BATCH_TOKENS.observe(tokens)
        try:
            scores = predictor.score([item.encoded for item in batch])
            results = [
                predictor.result(item.encoded, s, item.options) for item, s in zip(batch, scores, strict=True)
            ]
        except Exception as exc:  # one bad batch must not kill the worker
            logger.exception("inference failed for a batch of %d articles", len(batch))
            for item in batch:
                _resolve(item, error=exc)
            return
        finally:
            INFERENCE_DURATION.observe(time.perf_counter() - now)
        TOKENS.inc(tokens)
        for item, result in zip(batch, results, strict=True):
            _resolve(item, result=result)

    @staticmethod
    def _publish_model(new: Predictor, old: Predictor | None = None) -> None:
        if old is not None:
            MODEL_INFO.remove(old.ref.name, old.ref.version)
        MODEL_INFO.labels(new.ref.name, new.ref.version).set(1)


def _resolve(item: _Item, result: Analysis | None = None, error: BaseException | None = None) -> None:
    """Complete an item's future from the worker thread, unless its caller already gave up."""

    def complete() -> None:
        if item.future.done():
            return
        if error is not None:
            item.future.set_exception(error)
        else:
            item.future.set_result(result)  # type: ignore[arg-type]

    with contextlib.suppress(RuntimeError):  # the caller's event loop is closed: nobody is waiting
        item.loop.call_soon_threadsafe(complete)
