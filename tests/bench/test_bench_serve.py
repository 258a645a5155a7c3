"""Smoke test of `bench/serve.py`: the load driver against in-process servers, the baseline's weight mapping."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from bench.common import markdown_table
from bench.pipeline_server import create_app as create_baseline
from bench.serve import COLUMNS, LoadResult, _row, build_parser, drive, free_port
from service.app import create_app
from service.config import Settings
from tests.conftest import seed_records


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run `app` with uvicorn in a thread on a free loopback port until the block ends; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        with httpx.Client(trust_env=False, timeout=5) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get(f"{base}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def payloads() -> list[dict[str, str]]:
    return [{"text": r["text"]} for r in seed_records()]


def test_drive_naba_and_baseline_servers(model_dir: Path) -> None:
    results: dict[str, LoadResult] = {}
    with serving(create_app(Settings(model_dir=model_dir, device="cpu", max_wait_ms=1))) as url:
        results["naba"] = asyncio.run(drive(f"{url}/v1/analyze", payloads(), concurrency=2, seconds=1.0))
    with serving(create_baseline(model_dir)) as url:
        results["baseline"] = asyncio.run(drive(f"{url}/v1/analyze", payloads(), concurrency=2, seconds=1.0))

    for name, result in results.items():
        assert result.errors == 0, (name, result.first_error)
        assert len(result.latencies) >= 2 and result.rate > 0, name
        assert set(result.sent) <= set(range(len(payloads())))
    table = markdown_table(COLUMNS, [_row("naba", "torch", results["naba"], "1.00")])
    assert [c.strip() for c in table.splitlines()[0].strip("|").split("|")] == COLUMNS


def test_drive_counts_errors_and_respects_max_requests(model_dir: Path) -> None:
    with serving(create_baseline(model_dir)) as url:
        result = asyncio.run(drive(f"{url}/no-such-route", payloads(), 2, seconds=5.0, max_requests=3))
    assert result.errors == 3 and not result.latencies
    assert result.first_error is not None and result.first_error.startswith("HTTP 404")


def test_help_documents_options() -> None:
    text = build_parser().format_help()
    for option in ("--model", "--seconds", "--concurrency", "--backend", "onnx-int8", "--threads"):
        assert option in text
