"""Smoke test of `bench/profile_stages.py`: every stage timed, each as a share of the encoder's own time."""

from __future__ import annotations

from pathlib import Path

from bench.profile_stages import COLUMNS, main

STAGES = [
    "tokenise, split, windows, rules",
    "lexical head (features and logits)",
    "encoder and heads (score)",
    "results (evidence, summary)",
    "JSON",
    "analyze, end to end",
]


def test_prints_every_stage_against_the_encoder(lexical_model_dir: Path) -> None:
    args = ["--model", str(lexical_model_dir), "--backend", "torch", "--device", "cpu", "--batch", "6"]
    report = main([*args, "--repeats", "1", "--cprofile", "3"])
    table = [line for line in report.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    assert cells[0] == COLUMNS
    assert [row[0] for row in cells[2:]] == STAGES
    assert dict((row[0], row[4]) for row in cells[2:])["encoder and heads (score)"] == "1.00x"
    assert "Everything around the encoder" in report and "ncalls" in report  # the cProfile listing
