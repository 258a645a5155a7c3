"""Smoke test of `bench/batch.py`: its timing core runs on a tiny model and prints the documented table."""

from __future__ import annotations

from pathlib import Path

from bench.batch import COLUMNS, batch_table, build_parser, time_batch
from bench.common import length_stats, model_size
from models.results import Article
from tests.conftest import seed_records


def test_time_batch_table_has_expected_columns(predictor, model_dir: Path) -> None:
    articles = [Article(text=r["text"], title=r.get("title"), id=r["id"]) for r in seed_records()][:5]

    rows = time_batch(predictor, articles, repeats=1, batch_size=2)
    table = batch_table(rows, "tiny", model_size(model_dir), predictor.backend, 64)

    assert [r.articles for r in rows] == [5, 5]
    assert all(r.seconds > 0 for r in rows)
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == COLUMNS
    assert len(lines) == 4  # header, rule, baseline, naba predict
    assert "per-article loop (baseline)" in lines[2]
    assert "naba predict" in lines[3]
    assert "windows of 64/article" in length_stats(predictor, articles).line(64)


def test_help_documents_options() -> None:
    text = build_parser().format_help()
    for option in ("--model", "--articles", "--repeats", "--backend", "--quantize"):
        assert option in text
