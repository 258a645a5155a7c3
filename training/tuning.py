"""Decisions tuned on dev: each label's lexical weight (for a model with a lexical head) and calibration, then
its thresholds for every operating point.

`naba train` tunes a new model this way at the end of training, and `naba evaluate --retune` re-tunes an
existing one on other labelled data (a new dev set, a relabelled one) without retraining its weights. Both go
through `tune_on_dev`, so a re-tuned model is decided exactly as a freshly trained one.
"""

from __future__ import annotations

import logging

import numpy as np

from models.predictor import Predictor, Scores
from training.calibration import fit_calibration, platt_log_loss
from training.data import Record
from training.metrics import tune_thresholds

logger = logging.getLogger(__name__)

# The F-beta each operating point's thresholds maximise on dev; "balanced" (F1) is the artifact's `thresholds`.
OPERATING_POINT_BETAS = {"precision": 0.5, "recall": 2.0}
# The lexical weights tried per label: from 0 (the network alone) to 4 (the n-grams dominate).
LEXICAL_WEIGHT_GRID = np.arange(0.0, 4.0 + 1e-9, 0.25)


def tune_on_dev(predictor: Predictor, records: list[Record]) -> None:
    """Calibrate the predictor and tune its thresholds on the labelled dev articles, in place.

    With a lexical head, each label's lexical weight comes first (`tune_lexical_weights`). Then each label's
    Platt scaling is fitted to the raw logits (`training.calibration`); then, on the calibrated
    probabilities, each label's threshold that maximises F1 (`thresholds`, the balanced point) and those that
    maximise F0.5 and F2 (`operating_points`: precision and recall).
    """
    labelled = [r for r in records if r.labels is not None]
    if not labelled:
        return
    labels = predictor.labels
    truth = np.array([[float(lbl in (r.labels or ())) for lbl in labels] for r in labelled])
    if predictor.lexical is None:
        logits = dev_logits(predictor, labelled)
    else:
        logits = tune_lexical_weights(predictor, dev_scores(predictor, labelled), truth)
    predictor.config.calibration = fit_calibration(logits, truth, labels)
    probs = predictor.probabilities(logits)

    def tuned(beta: float) -> list[float]:
        # Unrounded: rounding could move a threshold past a dev score and change the decisions tuned for.
        return [float(t) for t in tune_thresholds(probs, truth, beta=beta)]

    predictor.config.thresholds = tuned(1.0)
    predictor.config.operating_points = {point: tuned(beta) for point, beta in OPERATING_POINT_BETAS.items()}
    logger.info("calibration fitted on dev: %s", predictor.config.calibration)
    logger.info("thresholds tuned on dev: %s", predictor.info["operating_points"])


def tune_lexical_weights(predictor: Predictor, scores: list[Scores], truth: np.ndarray) -> np.ndarray:
    """Set each label's lexical weight to the one of `LEXICAL_WEIGHT_GRID` whose Platt-scaled sum, network
    logit + weight x lexical logit, has the least log loss on dev; return the dev logits summed with them.

    Log loss, not F1: it scores every probability, where F1 on a dev set with a dozen positives of a label
    moves with one article. The smallest weight wins a tie. A label with no positive or no negative on dev
    cannot be fitted and keeps its weight.
    """
    weights = np.asarray(predictor.config.lexical_weights, dtype=float)
    if any(s.lexical_logits is None for s in scores):
        raise ValueError("scores without lexical logits: the predictor has no lexical head")
    lexical = np.stack([s.lexical_logits for s in scores])  # type: ignore[misc]
    network = np.stack([s.label_logits for s in scores]) - weights * lexical
    for k, label in enumerate(predictor.labels):
        y = truth[:, k]
        if y.min() == y.max():
            logger.warning(
                "no positive or no negative %s on dev: its lexical weight stays %g", label, weights[k]
            )
            continue
        losses = [platt_log_loss(network[:, k] + w * lexical[:, k], y) for w in LEXICAL_WEIGHT_GRID]
        weights[k] = LEXICAL_WEIGHT_GRID[int(np.argmin(losses))]
    predictor.config.lexical_weights = [float(w) for w in weights]
    logger.info(
        "lexical weights tuned on dev: %s",
        dict(zip(predictor.labels, predictor.config.lexical_weights, strict=True)),
    )
    return network + weights * lexical


def dev_scores(predictor: Predictor, records: list[Record], batch_size: int = 64) -> list[Scores]:
    """The model's scores of `records`, in record order."""
    scores: list[Scores] = []
    for start in range(0, len(records), batch_size):
        encoded = [predictor.encode(r.article) for r in records[start : start + batch_size]]
        scores += predictor.score(encoded)
    return scores


def dev_logits(predictor: Predictor, records: list[Record], batch_size: int = 64) -> np.ndarray:
    """The raw (uncalibrated) article logits of `records`, (n, K) in record order."""
    return np.stack([s.label_logits for s in dev_scores(predictor, records, batch_size)])
