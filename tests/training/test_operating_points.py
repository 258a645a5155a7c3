"""Operating points: F-beta threshold tuning, and `tune_on_dev` storing calibration and every threshold set."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import fbeta_score

from naba.models.artifacts import NabaConfig, read_config
from naba.models.predictor import Predictor
from naba.models.records import read_records
from naba.training.metrics import tune_thresholds
from naba.training.tuning import OPERATING_POINT_BETAS, dev_scores, tune_on_dev, tune_on_scores

# One label: scores 0.1 ... 0.9, positives mostly at the top.
PROBS = np.arange(1, 10)[:, None] / 10
TRUTH = np.array([0, 1, 0, 0, 1, 0, 1, 1, 1])[:, None]


def test_precision_leaning_beta_raises_and_recall_leaning_beta_lowers_the_threshold() -> None:
    balanced = tune_thresholds(PROBS, TRUTH)[0]
    precision = tune_thresholds(PROBS, TRUTH, beta=0.5)[0]
    recall = tune_thresholds(PROBS, TRUTH, beta=2.0)[0]
    # The middles of (0.6, 0.7], (0.4, 0.5] and (0.1, 0.2]: the ranges whose edges the old tuner returned.
    assert (precision, balanced, recall) == pytest.approx((0.65, 0.45, 0.15))
    assert tune_thresholds(PROBS, TRUTH, beta=1.0)[0] == balanced  # beta 1 is F1


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_fbeta_thresholds_maximise_fbeta_against_sklearn(beta: float) -> None:
    rng = np.random.default_rng(1)
    probs = rng.random((80, 3)).round(2)
    truth = (rng.random((80, 3)) < probs).astype(int)
    thresholds = tune_thresholds(probs, truth, beta=beta)
    for j in range(3):
        grid = np.unique(np.clip(np.append(probs[:, j], 0.5), 0.05, 0.95))
        best = max(fbeta_score(truth[:, j], probs[:, j] >= t, beta=beta) for t in grid)
        assert fbeta_score(truth[:, j], probs[:, j] >= thresholds[j], beta=beta) == pytest.approx(best)


def test_beta_must_be_positive() -> None:
    with pytest.raises(ValueError, match="beta"):
        tune_thresholds(PROBS, TRUTH, beta=0.0)


def test_trained_artifact_stores_calibration_and_operating_points(model_dir: Path) -> None:
    config = read_config(model_dir)
    assert set(config.calibration) == set(config.labels)
    assert all(p["scale"] > 0 for p in config.calibration.values())
    assert set(config.operating_points) == set(OPERATING_POINT_BETAS) == {"precision", "recall"}
    for thresholds in config.operating_points.values():
        assert len(thresholds) == len(config.labels)
        assert all(0.05 <= t <= 0.95 for t in thresholds)
    card = (model_dir / "README.md").read_text("utf-8")
    assert "Platt scaling" in card and "`precision` (F0.5-optimal)" in card


def test_tune_on_dev_fits_calibration_then_tunes_on_calibrated_scores(
    predictor: Predictor, train_file: Path
) -> None:
    config = NabaConfig.from_dict(predictor.config.to_dict())
    config.calibration, config.operating_points = {}, {}
    copy = Predictor(predictor.model, predictor.tokenizer, config, predictor.device)
    records = [r for r in read_records([str(train_file)]) if r.labels is not None]

    tune_on_dev(copy, records)

    assert set(config.calibration) == set(config.labels)
    logits = np.stack([s.label_logits for s in dev_scores(copy, records)])
    probs = copy.probabilities(logits)
    truth = np.array([[float(lbl in (r.labels or ())) for lbl in config.labels] for r in records])
    assert config.thresholds == tune_thresholds(probs, truth).tolist()  # stored as tuned, not rounded
    for point, beta in OPERATING_POINT_BETAS.items():
        assert config.operating_points[point] == tune_thresholds(probs, truth, beta=beta).tolist()


def test_stored_thresholds_keep_every_dev_decision_they_were_tuned_for(predictor: Predictor) -> None:
    # Per label, a positive and a negative 1e-4 apart in logit, at the edge of the best range: a threshold
    # rounded to 4 decimals lands on the wrong side of one of them.
    rng = np.random.default_rng(0)
    n = 40
    truth = np.zeros((n, 3))
    truth[: n // 2] = 1.0
    logits = np.where(truth > 0, 2.0, -2.0) + rng.normal(0.0, 0.3, (n, 3))
    logits[0], logits[n // 2] = 0.3, 0.2999  # the lowest-scored positive, the highest-scored negative
    scores = [SimpleNamespace(label_logits=row, lexical_logits=None) for row in logits]
    config = NabaConfig.from_dict(predictor.config.to_dict())
    copy = Predictor(predictor.model, predictor.tokenizer, config, predictor.device)

    tune_on_scores(copy, scores, truth)  # type: ignore[arg-type]

    probs = copy.probabilities(logits)  # float32, as served
    for point, beta in {"balanced": 1.0, **OPERATING_POINT_BETAS}.items():
        stored = copy.thresholds_for(point)  # type: ignore[arg-type]
        tuned = tune_thresholds(probs, truth, beta=beta)
        assert (probs >= np.array(stored, dtype=np.float32)).tolist() == (probs >= tuned).tolist(), point
        assert (probs[0] >= np.array(stored, dtype=np.float32)).all(), point  # the edge positive is kept


def test_lexical_weights_follow_the_dev_log_loss() -> None:
    """Each label's lexical weight is the grid point whose Platt-scaled sum fits dev best: the top of the grid
    when only the lexical logit knows the label, 0 when it is noise; a label dev cannot fit keeps its weight."""
    from types import SimpleNamespace

    from naba.models.predictor import Scores
    from naba.training.tuning import LEXICAL_WEIGHT_GRID, tune_lexical_weights

    rng = np.random.default_rng(0)
    n = 300
    truth = np.zeros((n, 3))
    truth[:, 0] = rng.random(n) < 0.3
    truth[:, 1] = rng.random(n) < 0.3
    signal = 2.0 * truth - 1.0
    network = np.stack(
        [rng.normal(size=n), 3 * signal[:, 1] + rng.normal(size=n), rng.normal(size=n)], axis=1
    )
    lexical = np.stack(
        [2 * signal[:, 0] + rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)], axis=1
    )
    config = SimpleNamespace(lexical_weights=[1.0, 1.0, 1.0])
    predictor = SimpleNamespace(config=config, labels=["lexical_knows", "network_knows", "never_seen"])
    scores = [
        Scores(np.zeros(3), np.zeros((1, 3)), np.zeros(1), network[i] + 1.0 * lexical[i], lexical[i])
        for i in range(n)
    ]

    summed = tune_lexical_weights(predictor, scores, truth)  # type: ignore[arg-type]

    assert config.lexical_weights == [LEXICAL_WEIGHT_GRID[-1], 0.0, 1.0]
    assert summed == pytest.approx(network + np.array(config.lexical_weights) * lexical)
