"""Multi-label classification metrics, per-label threshold tuning and a printable results table.

Plain numpy, so the library does not depend on scikit-learn (the tests cross-check against it). A label
counts as predicted when its probability is at or above its threshold (`probs >= threshold`), the rule the
predictor applies with the thresholds saved in the model artifact.
"""

from __future__ import annotations

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
    tp = (truth & pred).sum(axis=0)  # (k,)
    fp = (~truth & pred).sum(axis=0)
    fn = (truth & ~pred).sum(axis=0)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    per_label = {
        label: {
            "precision": float(precision[j]),
            "recall": float(recall[j]),
            "f1": float(f1[j]),
            "support": int(tp[j] + fn[j]),
        }
        for j, label in enumerate(labels)
    }
    tp_all, fp_all, fn_all = tp.sum(), fp.sum(), fn.sum()
    return {
        "per_label": per_label,
        "micro_f1": float(_ratio(2 * tp_all, 2 * tp_all + fp_all + fn_all)),
        "macro_f1": float(f1.mean()) if len(labels) else 0.0,
        "micro_precision": float(_ratio(tp_all, tp_all + fp_all)),
        "micro_recall": float(_ratio(tp_all, tp_all + fn_all)),
    }


def tune_thresholds(probs: np.ndarray, y_true: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
    """Per label, the threshold that maximises F1 on the given data.

    Tune on a development split, never on test data. Among equally good thresholds the one closest to 0.5
    wins (the higher one if two are equally close), so that thresholds only move when the data says so.

    Args:
        probs: (n, k) predicted probabilities.
        y_true: (n, k) 0/1 gold labels.
        grid: thresholds to try for every label. Default: per label, its distinct predicted probabilities
            plus 0.5, clipped to `THRESHOLD_RANGE`; with `>=` these are the only places F1 can change.

    Returns:
        (k,) thresholds; 0.5 for a label with no positive example, where F1 cannot guide the choice.
    """
    probs = np.asarray(probs, dtype=float)
    truth = _binary(y_true, "y_true")
    if probs.shape != truth.shape:
        raise ValueError(f"shapes disagree: probs {probs.shape}, y_true {truth.shape}")
    thresholds = np.full(probs.shape[1], DEFAULT_THRESHOLD)
    for j in range(probs.shape[1]):
        positives = int(truth[:, j].sum())
        if positives == 0:
            continue
        if grid is None:
            candidates = np.unique(np.clip(np.append(probs[:, j], DEFAULT_THRESHOLD), *THRESHOLD_RANGE))
        else:
            candidates = np.unique(np.asarray(grid, dtype=float))
        f1 = _f1_at(probs[:, j], truth[:, j], candidates, positives)
        best = np.flatnonzero(np.isclose(f1, f1.max(), rtol=0.0, atol=1e-12))
        # Closest to 0.5 first, then the higher threshold: lexsort sorts by its last key first.
        order = np.lexsort((-candidates[best], np.abs(candidates[best] - DEFAULT_THRESHOLD)))
        thresholds[j] = candidates[best[order[0]]]
    return thresholds


def _f1_at(scores: np.ndarray, truth: np.ndarray, candidates: np.ndarray, positives: int) -> np.ndarray:
    """F1 of `scores >= t` for every t in `candidates`, in O((n + m) log n) rather than O(n * m)."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # positives_from[i]: how many positives sit at sorted position i or later.
    positives_from = np.append(np.cumsum(truth[order][::-1])[::-1], 0)
    first = np.searchsorted(sorted_scores, candidates, side="left")  # first position with score >= t
    predicted = len(scores) - first
    tp = positives_from[first]
    return _ratio(2 * tp, predicted + positives)  # 2tp / (2tp + fp + fn), as fp + fn = predicted + pos - 2tp


def format_table(report: dict[str, Any], rouge: dict[str, float] | None = None) -> str:
    """A plain-text table of a `classification_report` and/or ROUGE scores, for the CLI to print.

    A report without classification results (data with summaries only) gives just the header and ROUGE rows.
    """
    per_label: dict[str, dict[str, float]] = report.get("per_label", {})
    rows: list[tuple[str, float | None, float | None, float, str]] = [
        (label, m["precision"], m["recall"], m["f1"], str(int(m["support"])))
        for label, m in per_label.items()
    ]
    if "micro_f1" in report:
        total = str(sum(int(m["support"]) for m in per_label.values()))
        rows.append(("micro", report["micro_precision"], report["micro_recall"], report["micro_f1"], total))
        rows.append(("macro", None, None, report["macro_f1"], ""))
    if rouge:
        for name, key in (("ROUGE-1", "rouge1"), ("ROUGE-2", "rouge2"), ("ROUGE-L", "rougeL")):
            rows.append((name, None, None, rouge[key], ""))
    width = max(len(name) for name in ["label", *(row[0] for row in rows)])
    lines = [f"{'label':<{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>9}"]
    for name, precision, recall, f1, support in rows:
        p, r = ("" if x is None else f"{x:.3f}" for x in (precision, recall))
        lines.append(f"{name:<{width}}  {p:>9}  {r:>9}  {f1:>9.3f}  {support:>9}".rstrip())
    return "\n".join(lines)
