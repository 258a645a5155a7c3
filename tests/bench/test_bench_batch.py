"""Smoke test of `bench/batch.py`: its timing core runs on a tiny model and prints the documented table."""

from __future__ import annotations

from pathlib import Path

from bench.batch import BASELINE, COLUMNS, batch_table, build_parser, time_batch
from bench.common import length_stats
from bench.pipeline_server import build_pipeline
from naba.models.results import Article
from tests.conftest import seed_records


def test_time_batch_table_has_expected_rows_and_columns(predictor, model_dir: Path) -> None:
    articles = [Article(text=r["text"], title=r.get("title"), id=r["id"]) for r in seed_records()][:5]
    classify = build_pipeline(model_dir)
    called: list[str] = []

    def pipeline_one(article: Article) -> object:
        called.append(article.id or "")
        return classify([article.text], truncation=True, max_length=64)

    rows = time_batch(pipeline_one, {"torch": predictor}, articles, repeats=2, batch_size=2)
    table = batch_table(rows)

    assert [(r.run, r.backend) for r in rows] == [
        (BASELINE, "torch"),
        ("naba Predictor, one article at a time", "torch"),
        ("naba predict (batch 2)", "torch"),
    ]
    assert called.count(articles[-1].id) == 2, "the baseline ran once per repeat over every article"
    assert all(r.articles == 5 and r.seconds > 0 for r in rows)
    # The pipeline stops at max_length (64 here); Naba reads every window of these multi-window articles.
    assert rows[0].tokens <= 64 < rows[1].tokens == rows[2].tokens
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == COLUMNS
    assert len(lines) == 5  # header, rule, baseline, loop, naba predict
    cells = [c.strip() for c in lines[4].strip("|").split("|")]
    assert cells[-1] and cells[-2], "naba predict gets both ratios: to the pipeline and to its own loop"
    assert "windows of 64/article" in length_stats(predictor, articles).line(64)


def test_help_documents_options() -> None:
    text = build_parser().format_help()
    for option in ("--model", "--articles", "--repeats", "--backend", "onnx-int8"):
        assert option in text
