"""Cross-validated tuning (`naba train --cv K`): folds are disjoint and stratified, no fold model scores an
article it trained on, the decisions are fitted on the out-of-fold scores alone, and the card says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from naba.models.artifacts import read_config
from naba.models.predictor import Predictor
from naba.models.records import Record, read_records
from naba.training import train as train_module
from naba.training.calibration import fit_calibration
from naba.training.cross_validation import cross_validated_metrics, fold_indices, rarest_label_key
from naba.training.metrics import tune_thresholds
from tests.conftest import TRAIN_ARGS, naba_train


def _records(n_rare: int = 6, n_common: int = 20, n_none: int = 14) -> list[Record]:
    rows = [Record(f"r{i}", "نص", labels=("rare", "common")) for i in range(n_rare)]
    rows += [Record(f"c{i}", "نص", labels=("common",)) for i in range(n_common)]
    rows += [Record(f"n{i}", "نص", labels=()) for i in range(n_none)]
    return rows


def test_folds_are_disjoint_cover_every_article_and_spread_the_rarest_label() -> None:
    records = _records()
    folds = fold_indices(records, 3, seed=0)
    flat = [i for fold in folds for i in fold]
    assert sorted(flat) == list(range(len(records)))  # every article held out exactly once
    assert rarest_label_key(records)[:6] == ["rare"] * 6
    assert [sum(records[i].id.startswith("r") for i in fold) for fold in folds] == [2, 2, 2]
    assert fold_indices(records, 3, seed=0) == folds  # seeded
    assert fold_indices(records, 3, seed=1) != folds


def test_fold_counts_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 2 folds"):
        fold_indices(_records(), 1, seed=0)
    with pytest.raises(ValueError, match="at least 50 labelled articles"):
        fold_indices(_records(), 50, seed=0)


def test_cross_validated_metrics_report_each_fold_and_the_spread() -> None:
    truth = np.array([[1.0], [0.0], [1.0], [0.0]])
    probs = np.array([[0.9], [0.1], [0.2], [0.1]], dtype=np.float32)
    cv = cross_validated_metrics(probs, truth, [0.5], [[0, 1], [2, 3]], ["x"])
    assert cv["macro_f1_per_fold"] == [1.0, 0.0]  # fold 2 misses its positive
    assert cv["macro_f1_mean"] == 0.5 and cv["macro_f1_std"] == pytest.approx(np.sqrt(0.5))
    assert cv["pooled"]["per_label"]["x"]["recall"] == 0.5


def test_cv_training_never_scores_an_article_it_trained_on_and_tunes_on_those_scores(
    tmp_path: Path, encoder_dir: Path, train_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained: list[list[str]] = []
    scored: list[tuple[list[str], np.ndarray]] = []
    fit, dev_scores = train_module.fit, train_module.dev_scores

    def spy_fit(records: list[Record], *args: Any, **kwargs: Any) -> Any:
        trained.append([r.id for r in records])
        return fit(records, *args, **kwargs)

    def spy_scores(predictor: Predictor, records: list[Record]) -> Any:
        scores = dev_scores(predictor, records)
        scored.append(([r.id for r in records], np.stack([s.label_logits for s in scores])))
        return scores

    monkeypatch.setattr(train_module, "fit", spy_fit)
    monkeypatch.setattr(train_module, "dev_scores", spy_scores)
    output = tmp_path / "cv"
    args = [
        "--train",
        str(train_file),
        "--base-model",
        str(encoder_dir),
        "--output",
        str(output),
        "--cv",
        "2",
    ]
    naba_train([*args, *TRAIN_ARGS])

    records = read_records([str(train_file)])
    labelled = [r.id for r in records if r.labels is not None]
    assert len(trained) == 3 and len(scored) == 2  # two fold models, then the final one
    for fold_trained, (fold_scored, _) in zip(trained, scored, strict=False):
        assert not set(fold_trained) & set(fold_scored)  # a fold model never scores its own articles
        assert set(fold_trained) | set(fold_scored) == {r.id for r in records}  # summary pairs: every fold
    assert sorted(i for ids, _ in scored for i in ids) == sorted(labelled)
    assert sorted(trained[2]) == sorted(r.id for r in records)  # the final model trains on everything

    # The decisions are those of the out-of-fold scores: calibration fitted on them, thresholds on its output.
    config = read_config(output)
    order = [i for ids, _ in scored for i in ids]
    logits = np.concatenate([lg for _, lg in scored])[np.argsort([labelled.index(i) for i in order])]
    by_id = {r.id: r for r in records}
    truth = np.array([[float(lbl in (by_id[i].labels or ())) for lbl in config.labels] for i in labelled])
    assert config.calibration == fit_calibration(logits, truth, config.labels)
    probs = Predictor.from_dir(output, device="cpu").probabilities(logits)
    assert config.thresholds == tune_thresholds(probs, truth).tolist()

    assert config.tuned_on.startswith("out-of-fold scores of 2-fold cross-validation over the 11 labelled")
    cv = (config.metrics or {})["cross_validation"]
    assert cv["folds"] == 2 and cv["articles"] == 11 and len(cv["macro_f1_per_fold"]) == 2
    card = (output / "README.md").read_text("utf-8")
    assert "calibrated on out-of-fold scores of 2-fold cross-validation" in card
    assert "## Cross-validation (2 folds, 11 labelled training articles)" in card


def test_cv_takes_two_folds_or_more(tmp_path: Path, train_file: Path) -> None:
    with pytest.raises(ValueError, match="--cv takes 0"):
        naba_train(["--train", str(train_file), "--output", str(tmp_path / "x"), "--cv", "1"])
