"""Tests for training.metrics: multi-label report, calibration, PR curves, threshold tuning and the table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.metrics import precision_recall_curve as sk_precision_recall_curve

from naba.training.metrics import (
    classification_report,
    expected_calibration_error,
    format_table,
    precision_recall_curve,
    reliability_bins,
    tune_thresholds,
)

LABELS = ["attack", "coordination_centre", "joint_operation"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_matches_sklearn_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = (rng.random((60, 3)) < 0.3).astype(int)
    y_pred = (rng.random((60, 3)) < 0.3).astype(int)
    y_true[:, 1] = 0  # a label with no support
    report = classification_report(y_true, y_pred, LABELS)
    for j, label in enumerate(LABELS):
        row = report["per_label"][label]
        assert row["precision"] == pytest.approx(precision_score(y_true[:, j], y_pred[:, j], zero_division=0))
        assert row["recall"] == pytest.approx(recall_score(y_true[:, j], y_pred[:, j], zero_division=0))
        assert row["f1"] == pytest.approx(f1_score(y_true[:, j], y_pred[:, j], zero_division=0))
        assert row["support"] == int(y_true[:, j].sum())
    for average in ("micro", "macro"):
        expected = f1_score(y_true, y_pred, average=average, zero_division=0)
        assert report[f"{average}_f1"] == pytest.approx(expected)
    assert report["micro_precision"] == pytest.approx(
        precision_score(y_true, y_pred, average="micro", zero_division=0)
    )
    assert report["micro_recall"] == pytest.approx(
        recall_score(y_true, y_pred, average="micro", zero_division=0)
    )
    json.dumps(report)  # plain Python numbers, ready for metrics.json


def test_report_zero_division_is_zero() -> None:
    report = classification_report(np.zeros((4, 1)), np.zeros((4, 1)), ["attack"])
    assert report["per_label"]["attack"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["micro_f1"] == report["macro_f1"] == 0.0


def test_report_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="shapes disagree"):
        classification_report(np.zeros((4, 2)), np.zeros((4, 2)), LABELS)
    with pytest.raises(ValueError, match="only 0 and 1"):
        classification_report(np.full((4, 3), 0.7), np.zeros((4, 3)), LABELS)
    with pytest.raises(ValueError, match="2-D"):
        classification_report(np.zeros(4), np.zeros(4), LABELS)


def test_thresholds_separate_a_separable_label() -> None:
    probs = np.array([[0.10, 0.9], [0.20, 0.8], [0.30, 0.1], [0.35, 0.2]])
    y_true = np.array([[0, 1], [0, 1], [1, 0], [1, 0]])
    thresholds = tune_thresholds(probs, y_true)
    # Label 0: only thresholds in (0.2, 0.3] give F1 = 1; the threshold is the middle of that range.
    assert thresholds[0] == pytest.approx(0.25)
    # Label 1: any threshold in (0.2, 0.8] gives F1 = 1; its middle happens to be 0.5.
    assert thresholds[1] == pytest.approx(0.5)
    predicted = (probs >= thresholds).astype(int)
    assert classification_report(y_true, predicted, ["a", "b"])["macro_f1"] == 1.0


def test_thresholds_without_positives_stay_at_half_and_are_clipped() -> None:
    probs = np.array([[0.99, 0.2], [0.98, 0.3], [0.01, 0.4]])
    y_true = np.array([[1, 0], [1, 0], [0, 0]])
    thresholds = tune_thresholds(probs, y_true)
    assert thresholds[1] == 0.5
    assert 0.05 <= thresholds[0] <= 0.95
    assert ((probs[:, 0] >= thresholds[0]) == y_true[:, 0].astype(bool)).all()


def test_thresholds_tie_goes_to_the_one_closest_to_half() -> None:
    probs = np.array([[0.9], [0.1]])
    y_true = np.array([[1], [0]])
    assert tune_thresholds(probs, y_true, grid=np.array([0.2, 0.4, 0.7, 0.9]))[0] == pytest.approx(0.4)
    assert tune_thresholds(probs, y_true, grid=np.array([0.25, 0.75]))[0] == 0.75


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_threshold_is_the_middle_of_the_best_range_not_a_dev_score(beta: float) -> None:
    # Every threshold in (0.6, 0.9] keeps only the positive; the old edge, 0.9 itself, lost it at 0.8999.
    probs = np.array([[0.9], [0.6], [0.1]])
    y_true = np.array([[1], [0], [0]])
    [threshold] = tune_thresholds(probs, y_true, beta=beta)
    assert threshold == pytest.approx(0.75)
    assert threshold <= 0.8999 and threshold > 0.6001  # a nudge of either score keeps its decision


def test_thresholds_keep_the_dev_decisions_with_the_widest_margin() -> None:
    rng = np.random.default_rng(3)
    probs = rng.random((60, 3)).round(3)
    y_true = (rng.random((60, 3)) < probs).astype(int)
    for beta in (0.5, 1.0, 2.0):
        thresholds = tune_thresholds(probs, y_true, beta=beta)
        for j, t in enumerate(thresholds):
            below, above = probs[probs[:, j] < t, j], probs[probs[:, j] >= t, j]
            assert t not in probs[:, j]
            # Halfway between the neighbouring scores (or a THRESHOLD_RANGE end): a nudge of either keeps
            # every decision.
            if len(below) and len(above) and below.max() > 0.05 and above.min() < 0.95:
                assert t == pytest.approx((below.max() + above.min()) / 2)


def test_a_midpoint_between_adjacent_float32_scores_never_drops_the_upper_one() -> None:
    low = np.float32(0.75)  # the float64 midpoint above it rounds back down to it in float32
    probs = np.array([[low], [np.nextafter(low, np.float32(1))]], dtype=np.float32)
    y_true = np.array([[0], [1]])
    [threshold] = tune_thresholds(probs, y_true)
    # A stored threshold is a Python float, which numpy compares with float32 scores in float32.
    assert (probs[:, 0] >= float(threshold)).tolist() == [False, True]


def test_thresholds_maximise_f1_against_brute_force() -> None:
    rng = np.random.default_rng(0)
    probs = rng.random((80, 3)).round(2)
    y_true = (rng.random((80, 3)) < probs).astype(int)
    thresholds = tune_thresholds(probs, y_true)

    def f1(j: int, t: float) -> float:
        pred, true = probs[:, j] >= t, y_true[:, j] == 1
        return 2 * (pred & true).sum() / (pred.sum() + true.sum())

    for j in range(3):
        grid = np.unique(np.clip(np.append(probs[:, j], 0.5), 0.05, 0.95))
        assert f1(j, thresholds[j]) == pytest.approx(max(f1(j, t) for t in grid))


def test_format_table() -> None:
    y_true = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]])
    y_pred = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0]])
    report = classification_report(y_true, y_pred, LABELS)
    table = format_table(report, {"rouge1": 0.41, "rouge2": 0.2, "rougeL": 0.35})
    lines = table.splitlines()
    assert lines[0].split() == ["label", "precision", "recall", "f1", "support"]
    assert lines[1].split() == ["attack", "1.000", "1.000", "1.000", "2"]
    assert lines[4].split()[0] == "micro" and lines[4].split()[-1] == "5"
    assert lines[5].split() == ["macro", f"{report['macro_f1']:.3f}"]
    assert lines[6:] == [line for line in lines if line.startswith("ROUGE")]
    assert lines[6].split() == ["ROUGE-1", "0.410"]
    assert len({len(line.rstrip()) for line in lines[:5]}) == 1  # columns line up
    assert "ROUGE" not in format_table(report)
    summaries_only = format_table({}, {"rouge1": 0.41, "rouge2": 0.2, "rougeL": 0.35}).splitlines()
    assert [line.split()[0] for line in summaries_only] == ["label", "ROUGE-1", "ROUGE-2", "ROUGE-L"]


def test_ece_is_zero_when_every_bin_comes_true_as_often_as_it_says() -> None:
    # Label 0: four at 0.25 (one positive) and four at 0.75 (three positives). Label 1: always 0.0, never true.
    probs = np.array([[0.25, 0.0]] * 4 + [[0.75, 0.0]] * 4)
    truth = np.array([[1, 0]] + [[0, 0]] * 3 + [[1, 0]] * 3 + [[0, 0]])
    per_label, mean = expected_calibration_error(probs, truth)
    assert per_label == pytest.approx([0.0, 0.0], abs=1e-12)
    assert mean == pytest.approx(0.0, abs=1e-12)


def test_ece_of_a_miscalibrated_label_by_hand() -> None:
    # Label 0: bin (0.8, 0.9] holds four at 0.9 with one positive, |0.9 - 0.25| = 0.65 weighted 4/6; bin
    # (0.0, 0.1] holds two at 0.1 with none, |0.1 - 0| = 0.1 weighted 2/6: ECE = (2.6 + 0.2) / 6 = 7/15.
    # Label 1: three at 0.5 with two positives and three at 0.5 with one: one bin, |0.5 - 0.5| = 0.
    probs = np.array([[0.9, 0.5]] * 4 + [[0.1, 0.5]] * 2)
    truth = np.array([[1, 1], [0, 1], [0, 0], [0, 0], [0, 1], [0, 0]])
    per_label, mean = expected_calibration_error(probs, truth)
    assert per_label == pytest.approx([7 / 15, 0.0])
    assert mean == pytest.approx(7 / 30)
    # One bin over everything: |mean prob - share of positives| = |(3.6 + 0.2) / 6 - 1/6| = 2.8 / 6.
    assert expected_calibration_error(probs[:, :1], truth[:, :1], n_bins=1)[0] == pytest.approx([2.8 / 6])


def test_reliability_bins_put_edges_in_the_lower_bin_and_leave_empty_bins_nan() -> None:
    bins = reliability_bins(
        np.array([0.0, 0.05, 0.1, 0.5, 0.55, 1.0]), np.array([0, 1, 0, 1, 1, 1]), n_bins=10
    )
    assert bins.edges == pytest.approx(np.linspace(0, 1, 11))
    assert bins.count.tolist() == [3, 0, 0, 0, 1, 1, 0, 0, 0, 1]
    assert bins.mean_prob[0] == pytest.approx(0.05) and bins.frequency[0] == pytest.approx(1 / 3)
    assert bins.mean_prob[4] == pytest.approx(0.5) and bins.frequency[9] == pytest.approx(1.0)
    assert np.isnan(bins.mean_prob[1]) and np.isnan(bins.frequency[8])


@pytest.mark.parametrize("seed", [0, 1])
def test_reliability_bins_match_sklearn_calibration_curve(seed: int) -> None:
    rng = np.random.default_rng(seed)
    probs = np.round(rng.random(300), 2)  # rounding puts some probabilities exactly on bin edges
    truth = (rng.random(300) < probs).astype(int)
    bins = reliability_bins(probs, truth, n_bins=8)
    frequency, mean_prob = calibration_curve(truth, probs, n_bins=8, strategy="uniform")
    used = bins.count > 0
    assert bins.frequency[used] == pytest.approx(frequency)
    assert bins.mean_prob[used] == pytest.approx(mean_prob)
    assert bins.count.sum() == 300


def test_calibration_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error(np.array([[1.5]]), np.array([[1]]))
    with pytest.raises(ValueError, match="non-empty"):
        expected_calibration_error(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins(np.array([0.5]), np.array([1]), n_bins=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pr_curve_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(80), 1)  # many ties
    truth = (rng.random(80) < 0.3).astype(int)
    precision, recall, thresholds = precision_recall_curve(scores, truth)
    sk_precision, sk_recall, sk_thresholds = sk_precision_recall_curve(truth, scores)
    assert thresholds == pytest.approx(sk_thresholds)
    assert precision == pytest.approx(sk_precision)
    assert recall == pytest.approx(sk_recall)


def test_pr_curve_by_hand_and_without_positives() -> None:
    precision, recall, thresholds = precision_recall_curve(
        np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])
    )
    assert thresholds.tolist() == [0.1, 0.35, 0.4, 0.8]
    assert precision == pytest.approx([0.5, 2 / 3, 0.5, 1.0, 1.0])
    assert recall == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.0])
    precision, recall, _ = precision_recall_curve(np.array([0.2, 0.7]), np.array([0, 0]))
    assert precision.tolist() == [0.0, 0.0, 1.0] and recall.tolist() == [0.0, 0.0, 0.0]


def test_format_table_shows_ece_and_evidence() -> None:
    y_true = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]])
    report = classification_report(y_true, y_true, LABELS)
    report["ece"] = {"mean": 0.02, "per_label": {"attack": 0.01, "coordination_centre": 0.03, "joint_operation": 0.02},
                     "n_bins": 10}  # fmt: skip
    report |= {"evidence_hit_rate": 0.75, "evidence_pairs": 4, "evidence_hit_rate_all": None,
               "evidence_pairs_all": 0, "evidence_quotes_not_found": 2}  # fmt: skip
    lines = format_table(report).splitlines()
    assert lines[0].split() == ["label", "precision", "recall", "f1", "support", "ece"]
    assert lines[1].split() == ["attack", "1.000", "1.000", "1.000", "2", "0.010"]
    assert lines[5].split() == ["macro", "1.000", "0.020"]
    assert len({len(line) for line in lines[:4]}) == 1  # the ece column lines up
    text = "\n".join(lines)
    assert "predicted gold labels: 0.750 of 4" in text
    assert "all gold labels:       n/a of 0" in text
    assert "not found in the text:    2" in text
