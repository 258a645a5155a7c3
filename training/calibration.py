"""Per-label Platt scaling: calibrated probabilities `sigmoid(scale * logit + bias)`, fitted on dev.

A fine-tuned tagger's raw sigmoid scores are usually over-confident. Platt scaling fits two numbers per label
on held-out data so that a score of 0.8 means "right about 80% of the time". The fit minimises the log loss
with Newton's method (two parameters, so the Hessian is 2x2): plain numpy, no randomness, the same answer on
every machine. As in Platt (1999) and Lin, Lin & Weng (2007), the 0/1 targets are softened to
`(positives + 1) / (positives + 2)` and `1 / (negatives + 2)`, so that a dev set on which a label is perfectly
separated still has a finite optimum instead of a scale that runs off to infinity.

Newton runs on standardised logits (zero mean, unit spread) from the constant fit, and the result is folded
back into the raw logits' scale and bias. Started from the raw logits instead, logits that are large and close
together (a label the model is unsure of, all near +8) or separated by a wide margin make the curvature vanish
or the steps ill-scaled, and the iterations stalled far from the optimum.

Labels that cannot be fitted (no positive or no negative on dev, a constant logit) keep the identity, and so
does a fit that would reverse the order of the scores, which thresholds (`p >= t`) cannot express.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

MAX_ITERATIONS = 100
MIN_STEP = 1e-10  # the line search gives up below this step size
# Converged when half the Newton decrement (gradient . step: how far the quadratic model says the loss can
# still fall) is below this, in mean log loss; near 0.1 to 0.7 that is about all double precision resolves.
TOLERANCE = 1e-14


def fit_platt(logits: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Fit `p = sigmoid(a * logit + b)` to one label by minimising the log loss.

    Args:
        logits: (n,) raw article logits of the label.
        truth: (n,) 0/1 gold labels.

    Returns:
        `(a, b)`; `(1.0, 0.0)` (the identity) when the label has no positive or no negative example, all
        logits are equal, or the fit gives a non-positive or non-finite scale. A fit that did not converge is
        returned as it stands, with a warning.
    """
    a, b, converged = _fit(logits, truth)
    if not converged:
        logger.warning("Platt fit did not converge (scale %.4g, bias %.4g); calibration may be off", a, b)
    return a, b


def platt_log_loss(logits: np.ndarray, truth: np.ndarray) -> float:
    """The mean log loss of one label's `fit_platt` probabilities on the data it was fitted to (with the
    plain 0/1 targets): how well Platt-scaled `logits` explain `truth`. `naba.training.tuning` compares candidate
    logits by it."""
    a, b = fit_platt(logits, truth)
    s = a * np.asarray(logits, dtype=float) + b
    return float(np.mean(np.logaddexp(0.0, s) - np.asarray(truth, dtype=float) * s))  # never overflows


def _fit(logits: np.ndarray, truth: np.ndarray) -> tuple[float, float, bool]:
    """`fit_platt`'s `(a, b)` and whether Newton converged (True for the identity kept on purpose)."""
    z = np.asarray(logits, dtype=float)
    y = np.asarray(truth, dtype=float)
    if z.shape != y.shape or z.ndim != 1:
        raise ValueError(f"logits and truth must be 1-D of the same length, got {z.shape} and {y.shape}")
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0 or np.ptp(z) == 0:
        return 1.0, 0.0, True
    target = np.where(y > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    centre, spread = float(z.mean()), float(z.std())
    x = (z - centre) / spread

    def loss(w: np.ndarray) -> float:
        s = w[0] * x + w[1]
        return float(np.mean(np.logaddexp(0.0, s) - target * s))  # log loss, written to never overflow

    prior = float(target.mean())
    w = np.array([0.0, np.log(prior / (1.0 - prior))])  # the constant fit: the base rate for every article
    current, converged = loss(w), False
    for _ in range(MAX_ITERATIONS):
        p = 0.5 * (1.0 + np.tanh(0.5 * (w[0] * x + w[1])))  # sigmoid without overflow
        residual = p - target
        gradient = np.array([np.mean(residual * x), np.mean(residual)])
        weight = p * (1.0 - p)
        hessian = np.array(
            [[np.mean(weight * x * x), np.mean(weight * x)], [np.mean(weight * x), np.mean(weight)]]
        )
        step = np.linalg.solve(hessian + 1e-12 * np.eye(2), gradient)
        decrement = float(gradient @ step)
        if decrement / 2 < TOLERANCE:
            converged = True
            break
        size = 1.0
        while size >= MIN_STEP:  # backtracking: take the Newton step only as far as the loss goes down
            new = loss(w - size * step)
            if new <= current - 1e-4 * size * decrement:
                w, current = w - size * step, new
                break
            size /= 2
        else:  # no step lowers the loss: stuck short of the optimum
            break
    a, b = w[0] / spread, w[1] - w[0] * centre / spread  # back to the raw logits' scale
    if not (np.isfinite(a) and np.isfinite(b)) or a <= 0:
        logger.warning("Platt fit gave scale %.4g, bias %.4g; keeping the identity", a, b)
        return 1.0, 0.0, True
    return float(a), float(b), converged


def fit_calibration(logits: np.ndarray, truth: np.ndarray, labels: list[str]) -> dict[str, dict[str, float]]:
    """Platt scaling for every label, in the form `NabaConfig.calibration` stores.

    Args:
        logits: (n, k) raw article logits on the dev set.
        truth: (n, k) 0/1 gold labels.
        labels: the k label names, in column order.

    Returns:
        `{label: {"scale": a, "bias": b}}` for every label; the identity where a label cannot be fitted.
    """
    logits = np.asarray(logits, dtype=float)
    truth = np.asarray(truth, dtype=float)
    if logits.shape != truth.shape or logits.ndim != 2 or logits.shape[1] != len(labels):
        raise ValueError(f"shapes disagree: logits {logits.shape}, truth {truth.shape}, {len(labels)} labels")
    calibration = {}
    for j, label in enumerate(labels):
        a, b, converged = _fit(logits[:, j], truth[:, j])
        if not converged:
            logger.warning(
                "calibration of %s: the Platt fit did not converge (scale %.4g, bias %.4g); its calibrated "
                "scores may be off",
                label,
                a,
                b,
            )
        calibration[label] = {"scale": round(a, 6), "bias": round(b, 6)}
        if (a, b) == (1.0, 0.0):
            logger.info("calibration of %s: identity (nothing to fit on dev)", label)
    return calibration
