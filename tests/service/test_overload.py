"""Overload the real service on loopback and check it sheds load instead of falling over.

The app (tiny model, a queue of 8 articles) runs under uvicorn in a background thread on 127.0.0.1. The test
first measures the rate it sustains with one request at a time, then drives it open-loop (requests fire on a
schedule, whatever the responses) at several times that rate for a fixed few seconds. It asserts structure,
never timing: every answer is 200 or a 503 with Retry-After and the error body, the queue really refused work
and never admitted more than `max_queue` articles (sampled every millisecond), memory did not balloon, and the
service answers 200 once the storm has passed. Rates, latencies (client-side and the server's own metrics) and
RSS are printed for the developer's note (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from service.app import create_app
from service.config import Settings
from tests.conftest import seed_records
from tests.service.live_server import live_server

MAX_QUEUE = 8
BASELINE_S = 1.0
OVERLOAD_S = 3.0
# Times the sequential rate. A phase runs only if the ones before drew no 503 (a machine too fast for 4x):
# the load rises instead of the check being dropped.
RATE_FACTORS = (4, 8, 16)
MAX_RATE = 2000.0  # requests/s: caps the request count on a very fast machine
RSS_GROWTH_LIMIT = 200 * 2**20
# The seed articles (2,000 to 5,000 characters, several windows each), so that a good share of each request's
# cost is the model and the overload reaches the engine's queue, not only the event loop.
TEXTS = [r["text"] for r in seed_records()]


@dataclass
class LiveServer:
    url: str
    app: FastAPI


@pytest.fixture
def served(model_dir: Path) -> Iterator[LiveServer]:
    """The real app over the tiny model, with a small queue, served on loopback."""
    app = create_app(
        Settings(
            model_dir=model_dir,
            device="cpu",
            max_queue=MAX_QUEUE,
            max_concurrent_requests=2 * MAX_QUEUE,
            max_wait_ms=2,
        )
    )
    with live_server(app) as url:
        yield LiveServer(url, app)


@dataclass
class Outcome:
    statuses: Counter[int] = field(default_factory=Counter)
    accepted_latencies: list[float] = field(default_factory=list)
    bad_503s: list[str] = field(default_factory=list)  # 503s without Retry-After or the error body
    transport_errors: Counter[str] = field(default_factory=Counter)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def server_means() -> dict[str, tuple[float, float]]:
    """(sum, count) of the server's own timings: whole request, queue wait, inference per batch."""
    names = {
        "request": ("naba_request_duration_seconds", {"route": "/v1/analyze"}),
        "queue_wait": ("naba_queue_wait_seconds", {}),
        "inference": ("naba_inference_duration_seconds", {}),
    }
    return {
        key: (
            REGISTRY.get_sample_value(f"{name}_sum", labels) or 0.0,
            REGISTRY.get_sample_value(f"{name}_count", labels) or 0.0,
        )
        for key, (name, labels) in names.items()
    }


def mean_ms_between(first: dict[str, tuple[float, float]], second: dict[str, tuple[float, float]]) -> str:
    parts = []
    for key, (total, count) in second.items():
        d_total, d_count = total - first[key][0], count - first[key][1]
        parts.append(f"{key} {d_total / d_count * 1e3:.1f} ms x{d_count:.0f}" if d_count else f"{key} -")
    return ", ".join(parts)


def measure_sequential(url: str, seconds: float) -> tuple[float, list[float]]:
    """One request at a time for `seconds`: the rate the service sustains unloaded, and its latencies."""
    latencies = []
    with httpx.Client(base_url=url, timeout=30) as client:
        start = time.perf_counter()
        while (now := time.perf_counter()) - start < seconds:
            response = client.post("/v1/analyze", json={"text": TEXTS[len(latencies) % len(TEXTS)]})
            assert response.status_code == 200, response.text
            latencies.append(time.perf_counter() - now)
        elapsed = time.perf_counter() - start
    return len(latencies) / elapsed, latencies


class DepthSampler(threading.Thread):
    """Reads the engine's admitted and queued article counts every millisecond, from outside both loops."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__(name="depth-sampler", daemon=True)
        self.app = app
        self.max_in_progress = 0  # admitted and unanswered: tokenising, queued or running
        self.max_depth = 0  # waiting in the queue for the model
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.001):
            engine = self.app.state.engine
            if engine is not None:
                self.max_in_progress = max(self.max_in_progress, engine.in_progress)
                self.max_depth = max(self.max_depth, engine.queue_depth)


async def open_loop(url: str, rate: float, seconds: float, outcome: Outcome) -> int:
    """Fire `rate` requests/s for `seconds` on a fixed schedule, whatever the answers; returns the count."""
    total = int(rate * seconds)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)  # no client-side queue

    async def one(client: httpx.AsyncClient, i: int) -> None:
        sent = time.perf_counter()
        try:
            response = await client.post("/v1/analyze", json={"text": TEXTS[i % len(TEXTS)]})
        except httpx.TransportError as exc:
            outcome.transport_errors[type(exc).__name__] += 1
            return
        outcome.statuses[response.status_code] += 1
        if response.status_code == 200:
            outcome.accepted_latencies.append(time.perf_counter() - sent)
        elif response.status_code == 503:
            body = response.json()
            if "retry-after" not in response.headers or set(body) != {"error", "error_type"}:
                outcome.bad_503s.append(f"{dict(response.headers)} {body}")

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        start = time.perf_counter()
        tasks = []
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, i)))
        await asyncio.gather(*tasks)
    return total


def test_overload_sheds_with_503_and_recovers(served: LiveServer) -> None:
    process = psutil.Process()
    rate, before = measure_sequential(served.url, BASELINE_S)
    print(  # noqa: T201
        f"\noverload: sequential {rate:.1f} req/s, latency p50 {percentile(before, 0.5) * 1e3:.1f} ms, "
        f"p99 {percentile(before, 0.99) * 1e3:.1f} ms"
    )
    rss_before = process.memory_info().rss

    outcome = Outcome()
    sent = 0
    sampler = DepthSampler(served.app)
    sampler.start()
    try:
        for factor in RATE_FACTORS:
            target = min(factor * rate, MAX_RATE)
            phase = Outcome()
            server_before = server_means()
            sent += asyncio.run(open_loop(served.url, target, OVERLOAD_S, phase))
            during = phase.accepted_latencies
            print(  # noqa: T201
                f"overload x{factor}: open loop {target:.1f} req/s for {OVERLOAD_S:g} s; statuses "
                f"{dict(sorted(phase.statuses.items()))}, transport errors {dict(phase.transport_errors)}; "
                f"accepted p50 {percentile(during, 0.5) * 1e3:.1f} ms, p99 {percentile(during, 0.99) * 1e3:.1f} "
                f"ms (mean {statistics.fmean(during or [0]) * 1e3:.1f} ms); server-side means: "
                f"{mean_ms_between(server_before, server_means())}"
            )
            outcome.statuses.update(phase.statuses)
            outcome.transport_errors.update(phase.transport_errors)
            outcome.bad_503s += phase.bad_503s
            if phase.statuses[503]:
                break
    finally:
        sampler.stop.set()
        sampler.join()
    rss_after = process.memory_info().rss
    with httpx.Client(base_url=served.url, timeout=30) as client:
        after = client.post("/v1/analyze", json={"text": TEXTS[0]})
    print(  # noqa: T201
        f"overload: most articles in progress {sampler.max_in_progress}, most queued {sampler.max_depth} "
        f"(max_queue {MAX_QUEUE}); "
        f"RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB; after: {after.status_code}"
    )

    assert not outcome.transport_errors, "connections failed instead of being answered"
    assert sum(outcome.statuses.values()) == sent
    assert set(outcome.statuses) <= {200, 503}, outcome.statuses
    assert not outcome.bad_503s, outcome.bad_503s[:3]
    assert outcome.statuses[503] > 0, f"no 503 even at {RATE_FACTORS[-1]}x: the queue never refused work"
    assert outcome.statuses[200] > 0, "nothing was served under overload"
    assert sampler.max_in_progress <= MAX_QUEUE, "the engine admitted more than max_queue articles"
    assert sampler.max_depth <= MAX_QUEUE, "the queue grew past max_queue"
    assert rss_after - rss_before < RSS_GROWTH_LIMIT
    assert after.status_code == 200, after.text
