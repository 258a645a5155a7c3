"""Smoke test of `bench/serve.py`: the load driver against in-process servers, the baseline's weight mapping."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.common import markdown_table
from bench.pipeline_server import create_app as create_baseline
from bench.serve import COLUMNS, LoadResult, _row, build_parser, drive
from naba.service.app import create_app
from naba.settings import Settings
from tests.conftest import seed_records
from tests.service.live_server import live_server


def payloads() -> list[dict[str, str]]:
    return [{"text": r["text"]} for r in seed_records()]


def test_drive_naba_and_baseline_servers(model_dir: Path) -> None:
    results: dict[str, LoadResult] = {}
    with live_server(create_app(Settings(model_dir=model_dir, device="cpu", max_wait_ms=1))) as url:
        results["naba"] = asyncio.run(drive(f"{url}/v1/analyze", payloads(), concurrency=2, seconds=1.0))
    with live_server(create_baseline(model_dir)) as url:
        results["baseline"] = asyncio.run(drive(f"{url}/v1/analyze", payloads(), concurrency=2, seconds=1.0))

    for name, result in results.items():
        assert result.errors == 0, (name, result.first_error)
        assert len(result.latencies) >= 2 and result.rate > 0, name
        assert set(result.sent) <= set(range(len(payloads())))
    table = markdown_table(COLUMNS, [_row("naba", "torch", results["naba"], "1.00")])
    assert [c.strip() for c in table.splitlines()[0].strip("|").split("|")] == COLUMNS


def test_drive_counts_errors_and_respects_max_requests(model_dir: Path) -> None:
    with live_server(create_baseline(model_dir)) as url:
        result = asyncio.run(drive(f"{url}/no-such-route", payloads(), 2, seconds=5.0, max_requests=3))
    assert result.errors == 3 and not result.latencies
    assert result.first_error is not None and result.first_error.startswith("HTTP 404")


def test_help_documents_options() -> None:
    text = build_parser().format_help()
    for option in ("--model", "--seconds", "--concurrency", "--backend", "onnx-int8", "--threads"):
        assert option in text
