"""`naba evaluate`: the metrics file and table come from the same predictor the service uses."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import seed_records, write_jsonl
from training.evaluate import main


def test_evaluate_writes_metrics_and_prints_the_table(model_dir: Path, tmp_path: Path, capsys) -> None:
    rows = seed_records()
    rows[0]["summary"] = rows[0]["text"].split("\n")[0]
    data = write_jsonl(tmp_path / "dev.jsonl", rows)
    out = tmp_path / "metrics.json"
    metrics = main(["--model", str(model_dir), "--data", str(data), "--output", str(out), "--device", "cpu"])

    saved = json.loads(out.read_text("utf-8"))
    assert saved == json.loads(json.dumps(metrics))
    assert set(saved["per_label"]) == {"attack", "coordination_centre", "joint_operation"}
    assert saved["per_label"]["coordination_centre"]["support"] == 5
    assert 0.0 <= saved["macro_f1"] <= 1.0 and 0.0 <= saved["micro_f1"] <= 1.0
    assert saved["n_summaries"] == 1 and set(saved["rouge"]) == {"rouge1", "rouge2", "rougeL"}
    assert saved["model"]["version"] == "test-1"
    printed = capsys.readouterr().out
    assert "coordination_centre" in printed and "macro" in printed.lower()
