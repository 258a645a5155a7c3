"""Platt scaling: the fit recovers known parameters, reaches the optimum on hard logits, is deterministic, and
is the identity where it must be."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pytest
from scipy.optimize import minimize

from naba.training import calibration
from naba.training.calibration import fit_calibration, fit_platt


def _synthetic(scale: float, bias: float, n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn so that P(y = 1 | z) = sigmoid(scale * z + bias) exactly."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(scale * z + bias)))).astype(int)
    return z, y


@pytest.mark.parametrize(("scale", "bias"), [(1.7, -0.6), (0.4, 0.8), (1.0, 0.0)])
def test_fit_recovers_known_scale_and_bias(scale: float, bias: float) -> None:
    z, y = _synthetic(scale, bias)
    a, b = fit_platt(z, y)
    assert a == pytest.approx(scale, abs=0.08)
    assert b == pytest.approx(bias, abs=0.08)


def test_fit_is_deterministic() -> None:
    z, y = _synthetic(1.3, 0.2, n=500)
    assert fit_platt(z, y) == fit_platt(z.copy(), y.copy())


@pytest.mark.parametrize(
    ("logits", "truth"),
    [
        pytest.param([-2.0, -1.0, 1.0, 2.0], [0, 0, 0, 0], id="no-positives"),
        pytest.param([-2.0, -1.0, 1.0, 2.0], [1, 1, 1, 1], id="no-negatives"),
        pytest.param([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1], id="constant-logit"),
        pytest.param([2.0, 1.0, -1.0, -2.0], [0, 0, 1, 1], id="reversed-order"),
    ],
)
def test_degenerate_labels_keep_the_identity(logits: list[float], truth: list[int]) -> None:
    assert fit_platt(np.array(logits), np.array(truth)) == (1.0, 0.0)


def test_separable_data_gives_a_finite_calibration() -> None:
    # Perfectly separated on dev: the softened targets keep the optimum finite.
    a, b = fit_platt(np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0]), np.array([0, 0, 0, 1, 1, 1]))
    assert 0 < a < 10 and np.isfinite(b)


def _log_loss(z: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], float]:
    """The softened-target log loss `fit_platt` minimises, as a function of (scale, bias)."""
    positives, negatives = y.sum(), len(y) - y.sum()
    target = np.where(y > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(w: np.ndarray) -> float:
        s = w[0] * z + w[1]
        return float(np.mean(np.logaddexp(0.0, s) - target * s))

    return loss


def _optimum(z: np.ndarray, y: np.ndarray) -> float:
    """The lowest loss scipy's BFGS finds, independently of `fit_platt`."""
    loss = _log_loss(z, y)
    return min(
        minimize(loss, start, method="BFGS", options={"gtol": 1e-12}).fun for start in ([0, 0], [1, 0])
    )


@pytest.mark.parametrize("centre", [10.0, 8.0, -10.0])
def test_high_close_logits_reach_the_optimum(centre: float, caplog: pytest.LogCaptureFixture) -> None:
    # A label the model is unsure of: every logit near one large value. Newton on the raw logits stopped far
    # from the optimum here (or flipped the scale and fell back to the identity).
    rng = np.random.default_rng(3)
    y = (rng.random(188) < 0.1).astype(float)
    z = centre + 0.1 * (rng.normal(size=188) + 1.5 * y)
    with caplog.at_level(logging.WARNING):
        a, b = fit_platt(z, y)
    assert not caplog.records
    assert a > 0 and _log_loss(z, y)(np.array([a, b])) == pytest.approx(_optimum(z, y), abs=1e-9)
    p = 1 / (1 + np.exp(-(a * z + b)))
    assert p.mean() == pytest.approx(y.mean(), abs=0.01)  # calibrated: the mean score is the base rate


@pytest.mark.parametrize("margin", [4.0, 30.0])
def test_separable_data_with_a_wide_margin_is_fitted_not_left_alone(margin: float) -> None:
    # Over-confident and separated on dev: the softened targets give a finite optimum, which the fit must
    # reach instead of returning the identity (which left a negative at a calibrated 1e-15 for margin 30).
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(6), np.zeros(60)]
    z = np.r_[rng.uniform(margin, margin + 3, 6), rng.uniform(-margin - 3, -margin, 60)]
    a, b = fit_platt(z, y)
    assert (a, b) != (1.0, 0.0)
    assert _log_loss(z, y)(np.array([a, b])) == pytest.approx(_optimum(z, y), abs=1e-9)


def test_a_fit_that_does_not_converge_is_reported_by_label(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(calibration, "MAX_ITERATIONS", 1)
    z, y = _synthetic(1.7, -0.6, n=500)
    with caplog.at_level(logging.WARNING):
        fit_calibration(z[:, None], y[:, None], ["attack"])
    assert any("attack" in r.message and "did not converge" in r.message for r in caplog.records)


def test_fit_calibration_covers_every_label() -> None:
    z, y = _synthetic(1.7, -0.6, n=5_000)
    logits = np.stack([z, z, z], axis=1)
    truth = np.stack([y, np.zeros_like(y), np.ones_like(y)], axis=1)
    calibration = fit_calibration(logits, truth, ["a", "never", "always"])
    assert set(calibration) == {"a", "never", "always"}
    assert calibration["a"]["scale"] == pytest.approx(1.7, abs=0.15)
    assert calibration["never"] == calibration["always"] == {"scale": 1.0, "bias": 0.0}
    with pytest.raises(ValueError, match="shapes disagree"):
        fit_calibration(logits, truth, ["a", "b"])


def test_calibrated_probabilities_apply_each_labels_platt_fit() -> None:
    from naba.models.predictor import calibrated_probabilities

    calibration = {"a": {"scale": 0.7, "bias": -1.2}, "b": {"scale": 2.0, "bias": 0.5}}  # "c": none
    logits = np.array([[-3.0, 0.0, 4.0], [1.5, -0.5, -40.0]])
    expected = 1 / (1 + np.exp(-(logits * [0.7, 2.0, 1.0] + [-1.2, 0.5, 0.0])))
    assert calibrated_probabilities(logits, calibration, ["a", "b", "c"]) == pytest.approx(
        expected, abs=1e-12
    )
