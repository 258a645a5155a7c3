"""Multi-label classification metrics, calibration, precision-recall curves, threshold tuning and a table.

The counting is scikit-learn's (`precision_recall_fscore_support`, `precision_recall_curve`), imported where
used so that importing this module stays light; binning and threshold tuning, which it has no equivalent for,
are plain numpy. A label counts as predicted when its probability is at or above its threshold
(`probs >= threshold`), the rule the predictor applies with the thresholds saved in the model artifact.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

THRESHOLD_RANGE = (0.05, 0.95)  # tuned thresholds never go past these, so a label is never always/never on
DEFAULT_THRESHOLD = 0.5


def _binary(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (articles, labels), got shape {array.shape}")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1")
    return array.astype(bool)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, with 0.0 where the denominator is 0 (sklearn's zero_division=0)."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Precision, recall, F1 and support per label, with micro and macro averages.

    Args:
        y_true: (n, k) array of 0/1 gold labels.
        y_pred: (n, k) array of 0/1 predictions.
        labels: the k label names, in column order.

    Returns:
        {"per_label": {label: {"precision", "recall", "f1", "support"}}, "micro_f1", "macro_f1",
        "micro_precision", "micro_recall"}, as plain floats and ints so it can be written as JSON.
        A ratio whose denominator is zero is 0.0.

    Raises:
        ValueError: when the shapes disagree with each other or with `labels`, or values are not 0/1.
    """
    truth = _binary(y_true, "y_true")
    pred = _binary(y_pred, "y_pred")
    if truth.shape != pred.shape or truth.shape[1] != len(labels):
        raise ValueError(f"shapes disagree: y_true {truth.shape}, y_pred {pred.shape}, {len(labels)} labels")
    precision, recall, f1, support = _precision_recall_f1(truth, pred, average=None)
    per_label = {
        label: {
            "precision": float(precision[j]),
            "recall": float(recall[j]),
            "f1": float(f1[j]),
            "support": int(support[j]),
        }
        for j, label in enumerate(labels)
    }
    micro_precision, micro_recall, micro_f1, _ = _precision_recall_f1(truth, pred, average="micro")
    return {
        "per_label": per_label,
        "micro_f1": float(micro_f1),
        "macro_f1": float(f1.mean()) if len(labels) else 0.0,
        "micro_precision": float(micro_precision),
        "micro_recall": float(micro_recall),
    }


def _precision_recall_f1(truth: np.ndarray, pred: np.ndarray, average: str | None) -> tuple[Any, ...]:
    """scikit-learn's `precision_recall_fscore_support` of (n, k) boolean arrays, with `zero_division=0`.

    Two cases it does not take as multi-label are handled here: one column (scikit-learn reads it as a binary
    target, so only class 1 is asked for) and no articles or no labels at all (scikit-learn refuses empty
    input; every count is 0, so every ratio is 0.0).
    """
    from sklearn.metrics import precision_recall_fscore_support

    k = truth.shape[1]
    if truth.size == 0:
        zeros = np.zeros(k)
        return (zeros, zeros, zeros, np.zeros(k, dtype=int)) if average is None else (0.0, 0.0, 0.0, None)
    if k == 1:
        truth, pred, columns = truth[:, 0].astype(int), pred[:, 0].astype(int), [1]
    else:
        columns = None  # multi-label: every column
    return precision_recall_fscore_support(truth, pred, labels=columns, average=average, zero_division=0)


def _probabilities(array: np.ndarray, name: str, ndim: int) -> np.ndarray:
    array = np.asarray(array, dtype=float)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    if not ((array >= 0.0) & (array <= 1.0)).all():  # also rejects NaN
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    return array


@dataclass(frozen=True)
class ReliabilityBins:
    """Calibration of one label, bin by bin: what the model said against what happened.

    Bins are equal-width over [0, 1]. `mean_prob` and `frequency` are NaN in empty bins, so a plot can skip them.
    """

    edges: np.ndarray  # (n_bins + 1,) from 0.0 to 1.0
    mean_prob: np.ndarray  # (n_bins,) mean predicted probability of the articles in the bin
    frequency: np.ndarray  # (n_bins,) share of those articles that carry the label
    count: np.ndarray  # (n_bins,) articles in the bin


def reliability_bins(probs: np.ndarray, truth: np.ndarray, n_bins: int = 10) -> ReliabilityBins:
    """Bin one label's predictions by probability, for a reliability diagram and the calibration error.

    A probability `p` falls in bin `i` when `edges[i] < p <= edges[i + 1]` (0.0 goes to the first bin), the
    convention of scikit-learn's `calibration_curve`, so the two agree bin for bin.

    Args:
        probs: (n,) predicted probabilities of one label.
        truth: (n,) 0/1 gold values of that label.
        n_bins: how many equal-width bins cover [0, 1].

    Raises:
        ValueError: when the shapes disagree, probabilities leave [0, 1], truth is not 0/1 or `n_bins < 1`.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    probs = _probabilities(probs, "probs", ndim=1)
    truth = _binary(np.asarray(truth).reshape(-1, 1), "truth")[:, 0]
    if probs.shape != truth.shape:
        raise ValueError(f"shapes disagree: probs {probs.shape}, truth {truth.shape}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.searchsorted(edges[1:-1], probs, side="left")  # (n,) bin of each prediction
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins become NaN, on purpose
        mean_prob = np.bincount(index, weights=probs, minlength=n_bins) / count
        frequency = np.bincount(index, weights=truth.astype(float), minlength=n_bins) / count
    return ReliabilityBins(edges, mean_prob, frequency, count)


def expected_calibration_error(
    probs: np.ndarray, truth: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, float]:
    """How far predicted probabilities are from observed frequencies, per label and averaged over labels.

    Analysts read a score of 0.8 as "right four times in five"; ECE measures how wrong that reading is. Per
    label it is the mean, over equal-width bins weighted by how many articles fall in each, of
    |mean predicted probability - share of positives| (see `reliability_bins`). 0 is perfectly calibrated;
    the value is in probability points, so 0.05 means scores are off by five points on average. F1 cannot
    see this: it only looks at which side of the threshold a score falls.

    Args:
        probs: (n, k) predicted probabilities.
        truth: (n, k) 0/1 gold labels.
        n_bins: equal-width bins over [0, 1]. Few articles per bin make ECE noisy and biased upwards, so
            keep bins well below the number of articles.

    Returns:
        ((k,) ECE per label, their unweighted mean), so a rare label counts as much as a frequent one.

    Raises:
        ValueError: when the arrays are not 2-D with the same shape, hold no rows, or hold bad values.
    """
    probs = _probabilities(probs, "probs", ndim=2)
    truth = _binary(truth, "truth")
    if probs.shape != truth.shape or probs.shape[0] == 0:
        raise ValueError(f"need the same non-empty shape: probs {probs.shape}, truth {truth.shape}")
    per_label = np.zeros(probs.shape[1])
    for j in range(probs.shape[1]):
        bins = reliability_bins(probs[:, j], truth[:, j], n_bins)
        used = bins.count > 0
        gap = np.abs(bins.mean_prob[used] - bins.frequency[used])
        per_label[j] = float((bins.count[used] * gap).sum() / probs.shape[0])
    return per_label, float(per_label.mean()) if len(per_label) else 0.0


def precision_recall_curve(
    scores: np.ndarray, truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of `scores >= t` for every distinct score `t` of one label.

    scikit-learn's `precision_recall_curve`: thresholds ascending, and one extra point (recall 0, precision 1)
    closing the curve. One difference: with no positive example recall is 0.0 here (as everywhere in this
    module), 1.0 there (with a warning, which is silenced here).

    Args:
        scores: (n,) predicted probabilities (any scores work) of one label.
        truth: (n,) 0/1 gold values of that label.

    Returns:
        precision (m + 1,), recall (m + 1,) and thresholds (m,), where m is the number of distinct scores.

    Raises:
        ValueError: when the inputs are empty, have different shapes or truth is not 0/1.
    """
    scores = np.asarray(scores, dtype=float)
    truth = _binary(np.asarray(truth).reshape(-1, 1), "truth")[:, 0]
    if scores.ndim != 1 or scores.shape != truth.shape or len(scores) == 0:
        raise ValueError(f"need two non-empty 1-D arrays of one length: {scores.shape}, {truth.shape}")
    from sklearn.metrics import precision_recall_curve as sklearn_curve

    with warnings.catch_warnings():  # no positive example: scikit-learn warns and sets recall to 1.0
        warnings.filterwarnings("ignore", "No positive class found", UserWarning)
        precision, recall, thresholds = sklearn_curve(truth.astype(int), scores)
    if not truth.any():
        recall = np.zeros_like(recall)  # 0.0, as every ratio without a denominator in this module
    return precision, recall, thresholds


def tune_thresholds(
    probs: np.ndarray, y_true: np.ndarray, grid: np.ndarray | None = None, beta: float = 1.0
) -> np.ndarray:
    """Per label, a threshold that maximises F-beta (F1 by default) on the given data.

    Tune on a development split, never on test data. With `p >= t`, F-beta only changes where `t` crosses a
    predicted probability, so every `t` between two consecutive distinct probabilities keeps the same
    articles. The best such range is chosen (among equally good ones, the range closest to 0.5, then the
    higher one, so that thresholds only move when the data says so), and the threshold is its midpoint, not
    its edge: a threshold equal to a dev probability would drop that article on the slightest change of
    score (half-precision or int8 serving), while the midpoint keeps the dev decisions with the widest margin.

    Args:
        probs: (n, k) predicted probabilities.
        y_true: (n, k) 0/1 gold labels.
        grid: when given, thresholds to choose from instead (the candidate closest to 0.5 wins ties, then
            the higher one); no midpoints are taken. Default: per label, the ranges between its distinct
            predicted probabilities, clipped to `THRESHOLD_RANGE`.
        beta: how much more recall counts than precision: 1 is F1, 0.5 leans to precision (higher
            thresholds), 2 leans to recall (lower thresholds).

    Returns:
        (k,) thresholds; 0.5 for a label with no positive example, where F-beta cannot guide the choice.

    Raises:
        ValueError: when the shapes disagree, `y_true` is not 0/1, or `beta` is not positive.
    """
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")
    given = np.asarray(probs)
    probs = given.astype(float)
    truth = _binary(y_true, "y_true")
    if probs.shape != truth.shape:
        raise ValueError(f"shapes disagree: probs {probs.shape}, y_true {truth.shape}")
    # The scores' own precision: a midpoint must also fall strictly inside its range once cast back to it.
    dtype = given.dtype if np.issubdtype(given.dtype, np.floating) else np.dtype(float)
    thresholds = np.full(probs.shape[1], DEFAULT_THRESHOLD)
    for j in range(probs.shape[1]):
        positives = int(truth[:, j].sum())
        if positives == 0:
            continue
        if grid is not None:
            candidates = np.unique(np.asarray(grid, dtype=float))
            score = _fbeta_at(probs[:, j], truth[:, j], candidates, positives, beta)
            best = np.flatnonzero(np.isclose(score, score.max(), rtol=0.0, atol=1e-12))
            # Closest to 0.5 first, then the higher threshold: lexsort sorts by its last key first.
            order = np.lexsort((-candidates[best], np.abs(candidates[best] - DEFAULT_THRESHOLD)))
            thresholds[j] = candidates[best[order[0]]]
            continue
        thresholds[j] = _best_range_midpoint(probs[:, j], truth[:, j], positives, beta, dtype)
    return thresholds


def _best_range_midpoint(
    scores: np.ndarray, truth: np.ndarray, positives: int, beta: float, dtype: np.dtype
) -> float:
    """The midpoint of the F-beta-optimal range of thresholds for one label (see `tune_thresholds`).

    Range i is `(upper[i - 1], upper[i]]` over the distinct scores (the first one open below, and one more
    above the highest score, which predicts nothing), clipped to `THRESHOLD_RANGE`; every threshold in it
    predicts exactly the articles scored `>= upper[i]`.
    """
    low_limit, high_limit = THRESHOLD_RANGE
    upper = np.append(np.unique(scores), np.inf)
    lower = np.append(-np.inf, upper[:-1])
    lo, hi = np.maximum(lower, low_limit), np.minimum(upper, high_limit)
    # Non-empty once clipped: open below unless the clip itself is the lower end, which is then included.
    valid = (lo < hi) | ((lower < low_limit) & (hi >= low_limit))
    lo, hi, upper = lo[valid], hi[valid], upper[valid]
    score = _fbeta_at(scores, truth, upper, positives, beta)
    best = np.flatnonzero(np.isclose(score, score.max(), rtol=0.0, atol=1e-12))
    distance = np.maximum(0.0, np.maximum(lo[best] - DEFAULT_THRESHOLD, DEFAULT_THRESHOLD - hi[best]))
    # Closest to 0.5 first, then the higher range: lexsort sorts by its last key first.
    pick = best[np.lexsort((-hi[best], distance))[0]]
    middle = lo[pick] + (hi[pick] - lo[pick]) / 2
    if lower[valid][pick] >= low_limit and dtype.type(middle) <= dtype.type(lo[pick]):
        middle = hi[pick]  # two adjacent representable scores: nothing lies between them, keep the upper one
    return float(middle)


def _fbeta_at(
    scores: np.ndarray, truth: np.ndarray, candidates: np.ndarray, positives: int, beta: float = 1.0
) -> np.ndarray:
    """F-beta of `scores >= t` for every t in `candidates`, in O((n + m) log n) rather than O(n * m)."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # positives_from[i]: how many positives sit at sorted position i or later.
    positives_from = np.append(np.cumsum(truth[order][::-1])[::-1], 0)
    first = np.searchsorted(sorted_scores, candidates, side="left")  # first position with score >= t
    predicted = len(scores) - first
    tp = positives_from[first]
    b2 = beta * beta
    # (1 + b2) tp / ((1 + b2) tp + b2 fn + fp), as b2 fn + fp = b2 pos + predicted - (1 + b2) tp.
    return _ratio((1 + b2) * tp, b2 * positives + predicted)


def format_table(report: dict[str, Any], rouge: dict[str, float] | None = None) -> str:
    """A plain-text table of a `classification_report` and/or ROUGE scores, for the CLI to print.

    A report without classification results (data with summaries only) gives just the header and ROUGE rows.
    A report from `naba evaluate` also carries calibration (`ece`: a column, with the mean over labels on
    the macro row) and evidence hit rates (lines under the table); older reports print without them.
    """
    per_label: dict[str, dict[str, float]] = report.get("per_label", {})
    ece: dict[str, Any] | None = report.get("ece")
    extra = 1 if ece else 0  # the ece column
    rows: list[tuple[str, list[str]]] = []
    for label, m in per_label.items():
        cells = [_cell(m["precision"]), _cell(m["recall"]), _cell(m["f1"]), str(int(m["support"]))]
        rows.append((label, cells + ([_cell(ece["per_label"].get(label))] if ece else [])))
    if "micro_f1" in report:
        total = str(sum(int(m["support"]) for m in per_label.values()))
        micro = [_cell(report[f"micro_{x}"]) for x in ("precision", "recall", "f1")]
        rows.append(("micro", [*micro, total] + [""] * extra))
        mean_ece = [_cell(ece["mean"])] if ece else []
        rows.append(("macro", ["", "", _cell(report["macro_f1"]), "", *mean_ece]))
    if rouge:
        for name, key in (("ROUGE-1", "rouge1"), ("ROUGE-2", "rouge2"), ("ROUGE-L", "rougeL")):
            rows.append((name, ["", "", _cell(rouge[key]), ""] + [""] * extra))
    header = ["precision", "recall", "f1", "support"] + ["ece"] * extra
    width = max(len(name) for name in ["label", *(row[0] for row in rows)])
    lines = [
        (f"{name:<{width}}" + "".join(f"  {cell:>9}" for cell in cells)).rstrip()
        for name, cells in [("label", header), *rows]
    ]
    if ece:
        lines.append(f"ece: expected calibration error over {ece['n_bins']} equal-width bins (0 is perfect)")
    if "evidence_hit_rate" in report:
        lines += [
            "evidence hit rate, predicted gold labels: "
            f"{_cell(report['evidence_hit_rate'], 'n/a')} of {report['evidence_pairs']}",
            "evidence hit rate, all gold labels:       "
            f"{_cell(report['evidence_hit_rate_all'], 'n/a')} of {report['evidence_pairs_all']}",
            f"evidence quotes not found in the text:    {report['evidence_quotes_not_found']}",
        ]
    return "\n".join(lines)


def _cell(value: float | None, missing: str = "") -> str:
    return missing if value is None else f"{value:.3f}"
