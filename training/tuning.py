"""Decisions tuned on dev: each label's calibration, then its thresholds for every operating point.

`naba train` tunes a new model this way at the end of training, and `naba evaluate --retune` re-tunes an
existing one on other labelled data (a new dev set, a relabelled one) without retraining its weights. Both go
through `tune_on_dev`, so a re-tuned model is decided exactly as a freshly trained one.
"""

from __future__ import annotations

import logging

import numpy as np

from models.predictor import Predictor
from training.calibration import fit_calibration
from training.data import Record
from training.metrics import tune_thresholds

logger = logging.getLogger(__name__)

# The F-beta each operating point's thresholds maximise on dev; "balanced" (F1) is the artifact's `thresholds`.
OPERATING_POINT_BETAS = {"precision": 0.5, "recall": 2.0}


def tune_on_dev(predictor: Predictor, records: list[Record]) -> None:
    """Calibrate the predictor and tune its thresholds on the labelled dev articles, in place.

    First each label's Platt scaling is fitted to the raw logits (`training.calibration`); then, on the
    calibrated probabilities, each label's threshold that maximises F1 (`thresholds`, the balanced point)
    and those that maximise F0.5 and F2 (`operating_points`: precision and recall).
    """
    labelled = [r for r in records if r.labels is not None]
    if not labelled:
        return
    labels = predictor.labels
    logits = dev_logits(predictor, labelled)
    truth = np.array([[float(lbl in (r.labels or ())) for lbl in labels] for r in labelled])
    predictor.config.calibration = fit_calibration(logits, truth, labels)
    probs = predictor.probabilities(logits)

    def tuned(beta: float) -> list[float]:
        # Unrounded: rounding could move a threshold past a dev score and change the decisions tuned for.
        return [float(t) for t in tune_thresholds(probs, truth, beta=beta)]

    predictor.config.thresholds = tuned(1.0)
    predictor.config.operating_points = {point: tuned(beta) for point, beta in OPERATING_POINT_BETAS.items()}
    logger.info("calibration fitted on dev: %s", predictor.config.calibration)
    logger.info("thresholds tuned on dev: %s", predictor.info["operating_points"])


def dev_logits(predictor: Predictor, records: list[Record], batch_size: int = 64) -> np.ndarray:
    """The raw (uncalibrated) article logits of `records`, (n, K) in record order."""
    rows: list[np.ndarray] = []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        encoded = [predictor.encode(r.article) for r in chunk]
        rows += [scores.label_logits for scores in predictor.score(encoded)]
    return np.stack(rows)
