"""Smoke test of `bench/batch_memory.py`: both runs measured in child processes, one table row each."""

from __future__ import annotations

from pathlib import Path

from bench.batch_memory import COLUMNS, main


def test_prints_a_row_per_run_with_the_article_count(tmp_path: Path) -> None:
    table = main(["--articles", "500", "--workdir", str(tmp_path)])
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == COLUMNS
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [(row[0], row[1]) for row in cells] == [("fresh", "500"), ("resume", "500")]
    assert all(float(row[2]) > 0 and float(row[3]) > 0 for row in cells)
    assert list(tmp_path.iterdir()) == []  # the archives went with their temporary directory
