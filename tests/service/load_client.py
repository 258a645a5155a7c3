"""A load generator for /v1/analyze, run in its own process: `python -m tests.service.load_client URL SECONDS`.

With `--rate R` it is open-loop: requests fire on a fixed schedule whatever the answers, as traffic from many
independent callers would. Without it, it sends one request at a time (the unloaded baseline). It runs
in a process of its own because a client sharing the server's interpreter shares its GIL: the client's own work
then shows up as server latency (with the client in the test process, accepted requests measured 1.6 s at a
4x overload that the server itself handled in under 0.2 s). The article texts are read as a JSON list on
stdin; the outcome is written as JSON on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class Outcome:
    """What came back: status counts, the latencies of the 200s, and anything malformed."""

    statuses: Counter[int] = field(default_factory=Counter)
    accepted_latencies: list[float] = field(default_factory=list)
    bad_503s: list[str] = field(default_factory=list)  # 503s without Retry-After or the error body
    transport_errors: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    elapsed_s: float = 0.0

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        raw = json.loads(text)
        return cls(
            statuses=Counter({int(k): v for k, v in raw["statuses"].items()}),
            accepted_latencies=raw["accepted_latencies"],
            bad_503s=raw["bad_503s"],
            transport_errors=Counter(raw["transport_errors"]),
            sent=raw["sent"],
            elapsed_s=raw["elapsed_s"],
        )

    def to_json(self) -> str:
        # Not dataclasses.asdict: it rebuilds a Counter from (key, value) pairs, which counts the pairs.
        return json.dumps({name: getattr(self, name) for name in self.__dataclass_fields__})

    def record(self, response: httpx.Response, latency: float) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code == 200:
            self.accepted_latencies.append(latency)
        elif response.status_code == 503:
            body = response.json()
            if "retry-after" not in response.headers or set(body) != {"error", "error_type"}:
                self.bad_503s.append(f"{dict(response.headers)} {body}")


async def one_at_a_time(url: str, texts: list[str], seconds: float) -> Outcome:
    """Send the next request as soon as the last one is answered, for `seconds`."""
    outcome = Outcome()
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
        start = time.perf_counter()
        while (sent := time.perf_counter()) - start < seconds:
            response = await client.post("/v1/analyze", json={"text": texts[outcome.sent % len(texts)]})
            outcome.record(response, time.perf_counter() - sent)
            outcome.sent += 1
        outcome.elapsed_s = time.perf_counter() - start
    return outcome


async def open_loop(url: str, texts: list[str], rate: float, seconds: float) -> Outcome:
    """POST `rate` requests/s to /v1/analyze for `seconds`, cycling through `texts`."""
    outcome = Outcome()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)  # no client-side queue

    async def one(client: httpx.AsyncClient, i: int) -> None:
        sent = time.perf_counter()
        try:
            response = await client.post("/v1/analyze", json={"text": texts[i % len(texts)]})
        except httpx.TransportError as exc:
            outcome.transport_errors[type(exc).__name__] += 1
            return
        outcome.record(response, time.perf_counter() - sent)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, trust_env=False) as client:
        start = time.perf_counter()
        tasks = []
        outcome.sent = int(rate * seconds)
        for i in range(outcome.sent):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, i)))
        await asyncio.gather(*tasks)
        outcome.elapsed_s = time.perf_counter() - start
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("seconds", type=float)
    parser.add_argument(
        "--rate", type=float, default=None, help="Requests/s, open loop; default one at a time."
    )
    args = parser.parse_args()
    texts = json.load(sys.stdin)
    run = (
        one_at_a_time(args.url, texts, args.seconds)
        if args.rate is None
        else open_loop(args.url, texts, args.rate, args.seconds)
    )
    sys.stdout.write(asyncio.run(run).to_json())


if __name__ == "__main__":
    main()
