"""Artifacts: save → load keeps outputs, and loading refuses anything unsafe or incomplete."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from naba.models.artifacts import (
    NabaConfig,
    load_artifact,
    read_config,
    save_artifact,
    work_directory,
    write_checksums,
)
from naba.models.card import render_card
from naba.models.encoding import collate
from naba.models.errors import ArtifactError
from naba.models.predictor import Predictor
from naba.models.results import Article
from naba.models.rules import RULES_VERSION, rule_feature_names
from tests.conftest import NEGATIVES


def read_config_copy(predictor: Predictor) -> NabaConfig:
    """A fresh copy of the predictor's config (save_artifact fills in versions and heads)."""
    return NabaConfig.from_dict(predictor.config.to_dict())


def _copy(model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model_dir, tmp_path / "copy"))


def test_artifact_holds_every_file(model_dir: Path) -> None:
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "naba_config.json", "metrics.json", "README.md",
            "checksums.json"} <= names  # fmt: skip
    config = read_config(model_dir)
    assert config.labels == ["attack", "coordination_centre", "joint_operation"]
    assert config.data_hash and len(config.data_hash) == 64
    assert set(config.versions) == {"naba", "transformers", "torch"}
    assert "macro_f1" in json.loads((model_dir / "metrics.json").read_text())
    assert "macro-F1" in (model_dir / "README.md").read_text()


def test_save_then_load_keeps_outputs(predictor: Predictor, tmp_path: Path) -> None:
    out = save_artifact(predictor.model, predictor.tokenizer, read_config_copy(predictor), tmp_path / "again")
    again = Predictor.from_dir(out, device="cpu")
    article = [Article(NEGATIVES[2])]
    a, b = predictor.analyze(article)[0], again.analyze(article)[0]
    assert a.scores == pytest.approx(b.scores)
    assert a.summary_indices == b.summary_indices


def test_float16_weights_halve_the_file_and_keep_the_outputs(predictor: Predictor, tmp_path: Path) -> None:
    config = read_config_copy(predictor)
    full = save_artifact(predictor.model, predictor.tokenizer, config, tmp_path / "fp32")
    half = save_artifact(predictor.model, predictor.tokenizer, read_config_copy(predictor), tmp_path / "fp16",
                         weights_dtype="float16")  # fmt: skip
    size = {p.name: (p / "model.safetensors").stat().st_size for p in (full, half)}
    assert size["fp16"] < 0.6 * size["fp32"]
    loaded = Predictor.from_dir(half, device="cpu")
    assert next(loaded.model.parameters()).dtype == torch.float32  # cast back for CPU inference
    article = [Article(NEGATIVES[2])]
    assert loaded.analyze(article)[0].scores == pytest.approx(predictor.analyze(article)[0].scores, abs=1e-2)


def test_card_opens_with_the_description_once_and_lists_the_training_settings(predictor: Predictor) -> None:
    text = "**A model for one newsroom**, trained on its archive."
    config = dataclasses.replace(
        predictor.config, description=text, training={"description": text, "epochs": 3, "seed": 0}
    )
    card = render_card(config)
    assert card.count("A model for one newsroom") == 1 and card.index(text) < card.index("## Evaluation")
    assert "- `epochs`: 3" in card and "- `seed`: 0" in card


def test_save_refuses_an_existing_directory(predictor: Predictor, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(ArtifactError, match="already exists"):
        save_artifact(predictor.model, predictor.tokenizer, read_config_copy(predictor), tmp_path / "taken")


def test_failed_save_leaves_nothing_behind(predictor: Predictor, tmp_path: Path, monkeypatch) -> None:
    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(predictor.tokenizer, "save_pretrained", explode)
    with pytest.raises(OSError, match="disk full"):
        save_artifact(predictor.model, predictor.tokenizer, read_config_copy(predictor), tmp_path / "new")
    assert list(tmp_path.iterdir()) == []


def test_work_directory_clears_what_killed_runs_left_and_nothing_else(tmp_path: Path) -> None:
    host = socket.gethostname().replace(".", "-")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)  # exited: its pid names no process (unless reused at once, vanishingly rare)
    left = {
        "dead": tmp_path / f".model.train.{host}.{dead_pid}.abc",
        "live": tmp_path / f".model.train.{host}.{os.getppid()}.abc",
        "other host": tmp_path / f".model.train.elsewhere.{dead_pid}.abc",
        "other kind": tmp_path / f".model.tmp.{host}.{dead_pid}.abc",
        "other target": tmp_path / f".other.train.{host}.{dead_pid}.abc",
    }
    for path in left.values():
        path.mkdir()
        (path / "checkpoint").write_text("x")

    with work_directory(tmp_path / "model", "train") as workdir:
        assert workdir.is_dir() and workdir.name.startswith(f".model.train.{host}.{os.getpid()}.")
        (workdir / "scratch").write_text("x")
    assert not workdir.exists()
    assert {name for name, path in left.items() if path.exists()} == set(left) - {"dead"}

    with pytest.raises(RuntimeError), work_directory(tmp_path / "model", "train") as failed:
        raise RuntimeError("training failed")
    assert not failed.exists()


def test_load_refuses_pickled_weights(model_dir: Path, tmp_path: Path) -> None:
    copy = _copy(model_dir, tmp_path)
    (copy / "model.safetensors").unlink()
    torch.save({"w": torch.zeros(1)}, copy / "pytorch_model.bin")
    with pytest.raises(ArtifactError, match="refuses"):
        load_artifact(copy)


def test_load_refuses_a_tampered_file(model_dir: Path, tmp_path: Path) -> None:
    copy = _copy(model_dir, tmp_path)
    config = json.loads((copy / "naba_config.json").read_text())
    config["thresholds"] = [0.0, 0.0, 0.0]
    (copy / "naba_config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="checksum"):
        load_artifact(copy)


@pytest.mark.parametrize("missing", ["naba_config.json", "tokenizer.json", "checksums.json"])
def test_load_refuses_an_incomplete_artifact(model_dir: Path, tmp_path: Path, missing: str) -> None:
    copy = _copy(model_dir, tmp_path)
    (copy / missing).unlink()
    with pytest.raises(ArtifactError):
        load_artifact(copy)


def test_load_of_a_missing_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nowhere")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ArtifactError, match=r"model\.safetensors is not a directory"):
        load_artifact(tmp_path / "model.safetensors")


def test_config_written_before_calibration_and_operating_points_still_loads(model_dir: Path) -> None:
    old = json.loads((model_dir / "naba_config.json").read_text())
    del old["calibration"], old["operating_points"]
    config = NabaConfig.from_dict(old)
    assert config.calibration == {} and config.operating_points == {}
    assert config.thresholds == read_config(model_dir).thresholds


def test_old_artifact_loads_with_raw_scores_and_balanced_thresholds_everywhere(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copy = _copy(model_dir, tmp_path)
    config = json.loads((copy / "naba_config.json").read_text())
    del config["calibration"], config["operating_points"]
    (copy / "naba_config.json").write_text(json.dumps(config))
    write_checksums(copy)
    old = Predictor.from_dir(copy, device="cpu")
    assert "fall back to the balanced thresholds" in caplog.text
    assert old.thresholds_for("precision") == old.thresholds_for("recall") == config["thresholds"]
    [scores] = old.score([old.encode(Article(NEGATIVES[2]))])
    assert scores.label_probs == pytest.approx(1 / (1 + np.exp(-scores.label_logits)), abs=1e-6)


def test_save_then_load_keeps_calibration_and_operating_points(predictor: Predictor, tmp_path: Path) -> None:
    config = read_config_copy(predictor)
    config.calibration = {lbl: {"scale": 0.5, "bias": 0.25} for lbl in config.labels}
    config.operating_points = {"precision": [0.9] * 3, "recall": [0.1] * 3}
    out = save_artifact(predictor.model, predictor.tokenizer, config, tmp_path / "again")
    again = read_config(out)
    assert again.calibration == config.calibration
    assert again.operating_points == config.operating_points


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"calibration": {"sports": {"scale": 1.0, "bias": 0.0}}}, "unknown labels"),
        ({"calibration": {"attack": {"scale": -1.0, "bias": 0.0}}}, "scale"),
        ({"operating_points": {"lenient": [0.1] * 3}}, "unknown operating point"),
        ({"operating_points": {"balanced": [0.1] * 3}}, "unknown operating point"),
        ({"operating_points": {"recall": [0.1]}}, "3 labels but 1 recall thresholds"),
    ],
)
def test_config_refuses_bad_calibration_or_operating_points(
    model_dir: Path, change: dict, message: str
) -> None:
    with pytest.raises(ArtifactError, match=message):
        NabaConfig.from_dict({**read_config(model_dir).to_dict(), **change})


def _edit_heads(model_dir: Path, tmp_path: Path, **changes: object) -> Path:
    """A copy of the artifact with its `naba_config.json` heads changed, checksums rewritten so that only the
    change is tested."""
    copy = _copy(model_dir, tmp_path)
    config = json.loads((copy / "naba_config.json").read_text())
    config["heads"].update(changes)
    (copy / "naba_config.json").write_text(json.dumps(config))
    write_checksums(copy)
    return copy


def test_model_without_rule_features_scores_as_before(model_dir: Path, predictor: Predictor) -> None:
    """No rule head and no features: article logits are exactly the pooled sentence logits, and the artifact
    is written as before rule features existed, so older versions of Naba still load it."""
    heads = json.loads((model_dir / "naba_config.json").read_text())["heads"]
    assert "rule_features" not in heads and "rules_version" not in heads
    assert predictor.model.rule_head is None and predictor.model.heads.rule_features == ()
    assert not [k for k in load_file(str(model_dir / "model.safetensors")) if k.startswith("rule_head")]
    encoded = predictor.encode(Article(NEGATIVES[2], title="هجوم انتحاري"))  # rules would fire on the title
    assert encoded.rule_features is None
    batch = collate([encoded], predictor.tokenizer.pad_token_id, predictor.model.heads.max_positions)
    assert "rule_features" not in batch
    with torch.inference_mode():
        out = predictor.model(**batch)
    logits = out["sentence_logits"].masked_fill(~batch["segment_mask"].unsqueeze(-1), float("-inf"))
    pooled = (torch.softmax(logits, dim=1) * out["sentence_logits"]).sum(dim=1)
    assert torch.equal(out["doc_logits"], pooled)


def test_rule_features_round_trip_through_the_config(rules_model_dir: Path) -> None:
    config = read_config(rules_model_dir)
    assert config.heads is not None and config.heads.rule_features == tuple(rule_feature_names())
    assert NabaConfig.from_dict(json.loads(json.dumps(config.to_dict()))).heads == config.heads


def test_load_refuses_rule_features_this_version_cannot_compute(
    rules_model_dir: Path, tmp_path: Path
) -> None:
    names = ["cc_retired_function", *rule_feature_names()[1:]]  # as many as the weights have
    copy = _edit_heads(rules_model_dir, tmp_path, rule_features=names)
    with pytest.raises(
        ArtifactError, match=r"rule features that this version of Naba does not have: \['cc_retired"
    ):
        Predictor.from_dir(copy, device="cpu")


def test_load_warns_when_rule_features_came_from_other_rules(
    rules_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Predictor.from_dir(_edit_heads(rules_model_dir, tmp_path, rules_version="0"), device="cpu")
    assert f"trained with rules version 0, this Naba has {RULES_VERSION}" in caplog.text


def test_config_refuses_duplicate_rule_features(rules_model_dir: Path) -> None:
    data = read_config(rules_model_dir).to_dict()
    data["heads"]["rule_features"] = ["at_suicide", "at_suicide"]
    with pytest.raises(ArtifactError, match="duplicate names"):
        NabaConfig.from_dict(data)
