"""Platt scaling: the fit recovers known parameters, is deterministic, and is the identity where it must be."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibration import fit_calibration, fit_platt


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
