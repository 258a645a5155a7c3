"""The admission gate refuses analysis requests beyond its limit at once, and only those."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import Receive, Scope, Send

from service.admission import AdmissionGate


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
