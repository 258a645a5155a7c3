"""K-fold cross-validation over the labelled training articles: which article is held out when, and what the
out-of-fold scores say.

Decisions tuned on a small dev split (thresholds, calibration, lexical weights) fit that split and not the
next articles. With cross-validation every labelled training article is scored once by a model that did not
train on it, and the decisions are fitted on all those out-of-fold scores: hundreds of articles instead of a
hundred, none of them seen by the model that scored it. `naba train --cv K` trains the K fold models, tunes
on their scores (`naba.training.tuning.tune_on_scores`), then trains the final model on every article.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from naba.models.predictor import Scores
from naba.models.records import Record
from naba.training.metrics import classification_report


def rarest_label_key(records: list[Record]) -> list[str]:
    """Each record's stratum: the rarest of its labels across `records`, or "" when it has none.

    Stratifying on the rarest label spreads a label with a few dozen examples evenly over the folds, which a
    plain shuffle does not: a fold without one positive can neither score nor tune that label.
    """
    counts = Counter(label for r in records for label in (r.labels or ()))
    return [min(r.labels, key=lambda lbl: (counts[lbl], lbl)) if r.labels else "" for r in records]


def fold_indices(records: list[Record], k: int, seed: int) -> list[list[int]]:
    """`k` disjoint lists of record indices that together hold every record, stratified by `rarest_label_key`.

    Raises:
        ValueError: `k` below 2, or more folds than records.
    """
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    if k > len(records):
        raise ValueError(f"{k} folds need at least {k} labelled articles, got {len(records)}")
    keys = rarest_label_key(records)
    counts = Counter(keys)
    # A stratum smaller than k cannot be in every fold: it joins the articles without a label.
    strata = [key if counts[key] >= k else "" for key in keys]
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [sorted(held.tolist()) for _, held in splitter.split(np.zeros(len(records)), strata)]


@dataclass
class OutOfFold:
    """The labelled training articles, each one's score from the fold model that held it out, and the folds."""

    records: list[Record]
    scores: list[Scores]
    folds: list[list[int]]


def cross_validated_metrics(
    probs: np.ndarray, truth: np.ndarray, thresholds: list[float], folds: list[list[int]], labels: list[str]
) -> dict[str, object]:
    """Tagging metrics of out-of-fold calibrated `probs` at `thresholds`: pooled over every article, and each
    fold's macro-F1 and per-label F1 with their mean and standard deviation over folds (the spread says how
    far a figure on a few dozen articles can be trusted)."""
    pred = (probs >= np.asarray(thresholds, dtype=probs.dtype)).astype(float)
    pooled = classification_report(truth, pred, labels)
    per_fold = [classification_report(truth[f], pred[f], labels) for f in folds]
    macro = np.array([r["macro_f1"] for r in per_fold])
    per_label = {label: np.array([r["per_label"][label]["f1"] for r in per_fold]) for label in labels}
    return {
        "folds": len(folds),
        "articles": len(truth),
        "pooled": pooled,
        "macro_f1_per_fold": [round(float(m), 4) for m in macro],
        "macro_f1_mean": float(macro.mean()),
        "macro_f1_std": float(macro.std(ddof=1)) if len(folds) > 1 else 0.0,
        "f1_mean_per_label": {label: float(v.mean()) for label, v in per_label.items()},
        "f1_std_per_label": {
            label: float(v.std(ddof=1)) if len(folds) > 1 else 0.0 for label, v in per_label.items()
        },
    }
