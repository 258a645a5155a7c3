"""The admission gate refuses analysis requests beyond its limit at once, and only those; the request path stays
off the thread pool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from naba.service.admission import AdmissionGate
from tests.service.fakes import ECONOMY_TEXT


def test_requests_beyond_the_limit_get_503_before_reaching_the_app() -> None:
    release = asyncio.Event()
    reached: list[str] = []

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    gate = AdmissionGate(slow_app, max_in_flight=2)

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gate), base_url="http://naba"
        ) as client:
            held = [asyncio.create_task(client.post("/v1/analyze", json={})) for _ in range(2)]
            while gate.in_flight < 2:
                await asyncio.sleep(0.01)
            refused = await client.post("/v1/analyze/batch", json={})
            other = asyncio.create_task(client.get("/healthz"))  # not gated
            while len(reached) < 3:
                await asyncio.sleep(0.01)
            release.set()
            return [refused, *(await asyncio.gather(*held, other))]

    refused, *served = asyncio.run(scenario())
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error_type"] == "overloaded"
    assert [r.status_code for r in served] == [200, 200, 200]
    assert reached == ["/v1/analyze", "/v1/analyze", "/healthz"]
    assert gate.in_flight == 0


def test_requests_never_hop_to_the_thread_pool(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Analysis, model info and admin requests run their dependencies on the event loop.

    FastAPI sends a plain `def` dependency to the thread pool on every request, and with any dependency
    override set it re-inspects every dependency's signature on every request. Under a flood those costs, not
    the model, saturated the event loop: accepted requests were answered at about half the rate they are
    without them. (The engine's own tokenising thread is asyncio's, not this pool.)
    """
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__qualname__", repr(func)))
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    assert client.post("/v1/analyze", json={"text": ECONOMY_TEXT}).status_code == 200
    assert client.post("/v1/analyze/batch", json={"articles": [{"text": ECONOMY_TEXT}]}).status_code == 200
    assert client.get("/v1/model").status_code == 200
    assert client.post("/v1/admin/reload").status_code == 403
    assert not hops, f"these ran in the thread pool on the request path: {hops}"
    assert not client.app.dependency_overrides
