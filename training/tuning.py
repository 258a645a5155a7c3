"""Decisions tuned on held-out scores: each label's lexical weight (for a model with a lexical head) and
calibration, then its thresholds for every operating point.

The scores are either the model's own on a dev set (`tune_on_dev`: `naba evaluate --retune`, and `naba train
--dev` without `--cv`) or out-of-fold scores from cross-validation (`naba train --cv K`: each article scored by
a model that did not train on it). Both go through `tune_on_scores`, so every model is decided the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.preprocessing import MultiLabelBinarizer

from naba.models.predictor import Predictor, Scores
from naba.models.records import Record
from naba.training.calibration import fit_calibration, platt_log_loss
from naba.training.metrics import tune_thresholds

logger = logging.getLogger(__name__)

# The F-beta each operating point's thresholds maximise on dev; "balanced" (F1) is the artifact's `thresholds`.
OPERATING_POINT_BETAS = {"precision": 0.5, "recall": 2.0}
# The lexical weights tried per label: from 0 (the network alone) to 4 (the n-grams dominate).
LEXICAL_WEIGHT_GRID = np.arange(0.0, 4.0 + 1e-9, 0.25)


def tune_on_dev(predictor: Predictor, records: list[Record]) -> None:
    """Calibrate the predictor and tune its thresholds on the labelled dev articles, in place."""
    labelled = [r for r in records if r.labels is not None]
    if labelled:
        tune_on_scores(predictor, dev_scores(predictor, labelled), truth_matrix(labelled, predictor.labels))


def truth_matrix(records: Sequence[Record], labels: Sequence[str]) -> np.ndarray:
    """The records' gold labels, (n, K) float 0/1 in `labels` order: the one multi-hot matrix of gold labels.

    A record whose `labels` is None counts as carrying none; a label outside `labels` is ignored, silently
    (filtered out first: `MultiLabelBinarizer` would warn about it).
    """
    known = set(labels)
    gold = [[lbl for lbl in (r.labels or ()) if lbl in known] for r in records]
    matrix = MultiLabelBinarizer(classes=list(labels)).fit_transform(gold)
    return matrix.astype(float).reshape(-1, len(labels))


def tune_on_scores(predictor: Predictor, scores: list[Scores], truth: np.ndarray) -> np.ndarray:
    """Decide the predictor's calibration and thresholds from held-out `scores` of articles with gold
    labels `truth`, in place; return their logits as the tuned model sums them.

    With a lexical head, each label's lexical weight comes first (`tune_lexical_weights`). Then each label's
    Platt scaling is fitted to the raw logits (`naba.training.calibration`); then, on the calibrated
    probabilities, each label's threshold that maximises F1 (`thresholds`, the balanced point) and those that
    maximise F0.5 and F2 (`operating_points`: precision and recall). The scores must have been computed with
    the lexical weights the predictor holds (each label's network logit is recovered from them).
    """
    labels = predictor.labels
    if predictor.lexical is None:
        logits = np.stack([s.label_logits for s in scores])
    else:
        logits = tune_lexical_weights(predictor, scores, truth)
    predictor.config.calibration = fit_calibration(logits, truth, labels)
    probs = predictor.probabilities(logits)

    def tuned(beta: float) -> list[float]:
        # Unrounded: rounding could move a threshold past a dev score and change the decisions tuned for.
        return [float(t) for t in tune_thresholds(probs, truth, beta=beta)]

    predictor.config.thresholds = tuned(1.0)
    predictor.config.operating_points = {point: tuned(beta) for point, beta in OPERATING_POINT_BETAS.items()}
    logger.info("calibration fitted: %s", predictor.config.calibration)
    logger.info("thresholds tuned: %s", predictor.info["operating_points"])
    return logits


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
