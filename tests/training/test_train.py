"""`naba train`: a smoke run writes a complete artifact; retraining grows labels; bad input fails early."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from models.artifacts import read_config
from models.errors import ArtifactError, DataError
from models.predictor import Predictor
from models.results import Article
from tests.conftest import NEGATIVES, TRAIN_ARGS, write_jsonl
from training.train import main


def test_training_writes_thresholds_tuned_on_dev(model_dir: Path) -> None:
    config = read_config(model_dir)
    assert len(config.thresholds) == 3
    assert all(0.05 <= t <= 0.95 for t in config.thresholds)
    assert config.training["train_articles"] == 17
    assert config.metrics is not None and "per_label" in config.metrics and "rouge" in config.metrics


def test_retraining_grows_the_label_set_and_keeps_old_rows(model_dir: Path, tmp_path: Path) -> None:
    new = write_jsonl(
        tmp_path / "new.jsonl",
        [
            {"id": f"n{i}", "text": t, "labels": ["economy"] if "أسعار" in t else []}
            for i, t in enumerate(NEGATIVES)
        ],
    )
    output = tmp_path / "retrained"
    args = [
        "--train",
        str(new),
        "--init-from",
        str(model_dir),
        "--output",
        str(output),
        "--learning_rate",
        "0",
    ]
    main([*args, *[a for a in TRAIN_ARGS if a not in {"--learning_rate", "1e-3"}]])

    config = read_config(output)
    assert config.labels == ["attack", "coordination_centre", "joint_operation", "economy"]
    assert config.thresholds == [0.5] * 4  # no dev set: the neutral threshold
    old, grown = load_file(str(model_dir / "model.safetensors")), load_file(str(output / "model.safetensors"))
    assert grown["label_head.weight"].shape[0] == 4
    assert (grown["label_head.weight"][:3] == old["label_head.weight"]).all()  # lr 0: rows unchanged
    analysis = Predictor.from_dir(output, device="cpu").analyze([Article(NEGATIVES[1])])[0]
    assert set(analysis.scores) == set(config.labels)


def test_retraining_never_writes_into_the_served_artifact(model_dir: Path, train_file: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    with pytest.raises(ArtifactError, match="already exists"):
        main(["--train", str(train_file), "--init-from", str(model_dir), "--output", str(model_dir)])
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before


def test_bad_training_data_fails_before_training_with_file_and_line(
    encoder_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "text": "نص", "labels": []}\n{"id": "b", "text": "  ", "labels": []}\n', "utf-8"
    )
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        main(["--train", str(bad), "--base-model", str(encoder_dir), "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_fixed_label_set_rejects_unknown_labels(encoder_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": NEGATIVES[0], "labels": ["sports"]}])
    args = ["--train", str(data), "--base-model", str(encoder_dir), "--output", str(tmp_path / "o")]
    with pytest.raises(DataError, match="sports"):
        main([*args, "--labels", "attack", "joint_operation"])


def test_training_without_labels_or_label_set_is_refused(encoder_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": NEGATIVES[0], "summary": "ملخص"}])
    with pytest.raises(ArtifactError, match="no labels"):
        main(["--train", str(data), "--base-model", str(encoder_dir), "--output", str(tmp_path / "o")])


def test_output_may_be_in_a_directory_that_does_not_exist_yet(
    encoder_dir: Path, train_file: Path, tmp_path: Path
) -> None:
    output = tmp_path / "new" / "nested" / "model"
    args = ["--train", str(train_file), "--base-model", str(encoder_dir), "--output", str(output)]
    main([*args, "--max-length", "64", "--window-overlap", "16", "--max_steps", "1"])
    assert (output / "naba_config.json").is_file()
    assert [p.name for p in output.parent.iterdir()] == ["model"]  # no work directory left behind


def test_training_arguments_can_come_from_one_json_file(
    encoder_dir: Path, train_file: Path, tmp_path: Path
) -> None:
    spec = {"train": [str(train_file)], "base_model": str(encoder_dir), "output": str(tmp_path / "m"),
            "max_length": 64, "window_overlap": 16, "max_steps": 1, "report_to": "none", "save_strategy": "no",
            "remove_unused_columns": False}  # fmt: skip
    path = tmp_path / "args.json"
    path.write_text(json.dumps(spec))
    out = main([str(path)])
    assert read_config(out).training["max_length"] == 64
