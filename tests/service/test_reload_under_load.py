"""Swap the served model through `POST /v1/admin/reload` while clients keep analysing: nobody may notice.

The real app runs under uvicorn on loopback with an admin key. A few async clients post articles in a loop
while the test reloads the model three times: to a new artifact (a copy of the session model re-saved under
another version), back to a plain copy, and to the new one again. Every analysis must succeed (200), responses
must come from both versions (the swaps really happened under load), and `/v1/model` must name the new
version at the end. The session's model directory is only read, never written.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from naba.models.artifacts import load_artifact, save_artifact
from naba.service.app import create_app
from naba.settings import Settings
from tests.conftest import NEGATIVES, seed_records
from tests.service.live_server import live_server

ADMIN_KEY = "reload-test-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CLIENTS = 4
MIN_LOAD_S = 2.0
NEW_VERSION = "test-reloaded"
TEXTS = [r["text"] for r in seed_records()] + NEGATIVES


@dataclass
class Artifacts:
    copy: Path  # the session model, copied: same version, another path
    new: Path  # the same weights saved as another version
    old_version: str


@pytest.fixture
def artifacts(model_dir: Path, tmp_path: Path) -> Artifacts:
    copy = Path(shutil.copytree(model_dir, tmp_path / "copy"))
    model, tokenizer, config = load_artifact(copy)
    old_version = config.version
    config.version = NEW_VERSION
    new = save_artifact(model, tokenizer, config, tmp_path / "new")
    return Artifacts(copy=copy, new=new, old_version=old_version)


@pytest.fixture
def url(model_dir: Path) -> Iterator[str]:
    settings = Settings(model_dir=model_dir, device="cpu", admin_keys=[ADMIN_KEY])
    with live_server(create_app(settings)) as base_url:
        yield base_url


@dataclass
class Load:
    statuses: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)  # model version of each 200
    failures: list[str] = field(default_factory=list)


async def keep_analysing(client: httpx.AsyncClient, worker: int, stop: asyncio.Event, load: Load) -> None:
    i = worker
    while not stop.is_set():
        try:
            response = await client.post("/v1/analyze", json={"text": TEXTS[i % len(TEXTS)]})
        except httpx.TransportError as exc:
            load.failures.append(f"{type(exc).__name__}: {exc}")
            continue
        load.statuses[response.status_code] += 1
        if response.status_code == 200:
            load.versions[response.json()["model"]["version"]] += 1
        else:
            load.failures.append(f"{response.status_code} {response.text}")
        i += CLIENTS


async def reload_under_load(url: str, targets: list[Path]) -> tuple[Load, list[dict]]:
    load = Load()
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
        workers = [asyncio.create_task(keep_analysing(client, w, stop, load)) for w in range(CLIENTS)]
        start = time.monotonic()
        reloads = []
        try:
            await asyncio.sleep(0.3)  # the clients are busy before the first swap
            for target in targets:
                response = await client.post("/v1/admin/reload", json={"path": str(target)}, headers=ADMIN)
                assert response.status_code == 200, response.text
                reloads.append(response.json())
                await asyncio.sleep(0.2)  # some requests on each model
            await asyncio.sleep(max(0.0, MIN_LOAD_S - (time.monotonic() - start)))
        finally:
            stop.set()
            await asyncio.gather(*workers)
    return load, reloads


def test_reload_under_load_drops_no_request(url: str, artifacts: Artifacts) -> None:
    targets = [artifacts.new, artifacts.copy, artifacts.new]
    load, reloads = asyncio.run(reload_under_load(url, targets))
    info = httpx.get(f"{url}/v1/model", timeout=30).json()

    print(  # noqa: T201
        f"\nreload under load: {sum(load.statuses.values())} requests, statuses {dict(load.statuses)}, "
        f"versions served {dict(load.versions)}; reload seconds {[r['seconds'] for r in reloads]}"
    )
    assert not load.failures, load.failures[:3]
    assert set(load.statuses) == {200}
    assert [r["path"] for r in reloads] == [str(t) for t in targets]
    assert [r["model"]["version"] for r in reloads] == [NEW_VERSION, artifacts.old_version, NEW_VERSION]
    assert reloads[0]["previous_model"]["version"] == artifacts.old_version
    assert set(load.versions) == {artifacts.old_version, NEW_VERSION}, "the swaps did not happen under load"
    assert info["version"] == NEW_VERSION
