"""Overload the real service on loopback and check it sheds load instead of falling over.

The app (tiny model, a queue of 8 articles) runs under uvicorn in a background thread on 127.0.0.1; the load
comes from `tests.service.load_client` in a process of its own. The test first measures the rate the service
sustains with one request at a time, then drives it open-loop (requests fire on a schedule, whatever the
responses) at several times that rate for a fixed few seconds. It checks that every answer is 200 or a 503
with Retry-After and the error body, that the queue really refused work and never admitted more than
`max_queue` articles (sampled every millisecond), that accepted requests kept a latency bounded by the queue
(relative to this run's unloaded latency, with a wide margin: the one timing check, which the issue asks
for), that memory did not balloon, and that the service answers 200 once the storm has passed. Rates,
latencies (client-side and the server's own metrics) and RSS are printed for the developer's note
(`pytest -s`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from naba.service.app import create_app
from naba.settings import Settings
from tests.conftest import seed_records
from tests.service.live_server import live_server
from tests.service.load_client import Outcome

MAX_QUEUE = 8
BASELINE_S = 1.0
OVERLOAD_S = 3.0
# Times the sequential rate. A phase runs only if the ones before drew no 503 (a machine too fast for 4x):
# the load rises instead of the check being dropped.
RATE_FACTORS = (4, 8, 16)
MAX_RATE = 2000.0  # requests/s: caps the request count on a very fast machine
RSS_GROWTH_LIMIT = 200 * 2**20
# Accepted p99 under overload may be at most this many times (max_queue + 1) unloaded p50s (see the assertion).
LATENCY_SLACK = 8
REPO = Path(__file__).resolve().parents[2]
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


def drive(url: str, seconds: float, rate: float | None = None) -> Outcome:
    """Run the load client in its own process against `url`: one at a time, or open loop at `rate`."""
    command = [sys.executable, "-m", "tests.service.load_client", url, str(seconds)]
    if rate is not None:
        command += ["--rate", f"{rate:.3f}"]
    done = subprocess.run(
        command, input=json.dumps(TEXTS), capture_output=True, text=True, cwd=REPO, timeout=seconds + 120
    )
    assert done.returncode == 0, done.stderr
    return Outcome.from_json(done.stdout)


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


def test_overload_sheds_with_503_keeps_latency_and_recovers(served: LiveServer) -> None:
    process = psutil.Process()
    unloaded = drive(served.url, BASELINE_S)
    assert set(unloaded.statuses) == {200}, unloaded.statuses
    rate = unloaded.sent / unloaded.elapsed_s
    p50_unloaded = percentile(unloaded.accepted_latencies, 0.5)
    print(  # noqa: T201
        f"\noverload: one at a time {rate:.1f} req/s, latency p50 {p50_unloaded * 1e3:.1f} ms, "
        f"p99 {percentile(unloaded.accepted_latencies, 0.99) * 1e3:.1f} ms"
    )
    rss_before = process.memory_info().rss

    outcome = Outcome()
    sampler = DepthSampler(served.app)
    sampler.start()
    try:
        for factor in RATE_FACTORS:
            target = min(factor * rate, MAX_RATE)
            server_before = server_means()
            phase = drive(served.url, OVERLOAD_S, rate=target)
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
            outcome.accepted_latencies += during
            outcome.sent += phase.sent
            if phase.statuses[503]:
                break
    finally:
        sampler.stop.set()
        sampler.join()
    rss_after = process.memory_info().rss
    after = drive(served.url, 0.2)
    print(  # noqa: T201
        f"overload: most articles in progress {sampler.max_in_progress}, most queued {sampler.max_depth} "
        f"(max_queue {MAX_QUEUE}); RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB; "
        f"after: {dict(after.statuses)}"
    )

    assert not outcome.transport_errors, "connections failed instead of being answered"
    assert sum(outcome.statuses.values()) == outcome.sent
    assert set(outcome.statuses) <= {200, 503}, outcome.statuses
    assert not outcome.bad_503s, outcome.bad_503s[:3]
    assert outcome.statuses[503] > 0, f"no 503 even at {RATE_FACTORS[-1]}x: the queue never refused work"
    assert outcome.statuses[200] > 0, "nothing was served under overload"
    assert sampler.max_in_progress <= MAX_QUEUE, "the engine admitted more than max_queue articles"
    assert sampler.max_depth <= MAX_QUEUE, "the queue grew past max_queue"
    # An accepted request waits behind at most max_queue articles, so its latency is bounded by the queue, not
    # by the flood. The bound is relative to this run's own unloaded latency, with a wide margin for a noisy
    # machine (client-side latency under load is mostly event-loop lag: accepted p99 came within 1.3x of a slack
    # of 4 on a busy 2-core machine). Requests answered in line with the flood (the failure this catches) wait
    # for everything sent before them, which grows with the seconds of overload, far past this bound.
    bound = LATENCY_SLACK * (MAX_QUEUE + 1) * p50_unloaded
    p99_accepted = percentile(outcome.accepted_latencies, 0.99)
    assert p99_accepted <= bound, f"accepted p99 {p99_accepted:.3f} s > {bound:.3f} s: latency grew with load"
    assert rss_after - rss_before < RSS_GROWTH_LIMIT
    assert set(after.statuses) == {200}, after.statuses
