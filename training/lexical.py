"""Fit the lexical head (`naba.models.lexical`): TF-IDF word n-grams and the guide's rule features on the labelled
training articles, one logistic regression per label.

`naba train --lexical` fits it once the network is trained, on the same labelled records; then each label's
lexical weight (1 without dev data), its calibration and its thresholds are tuned on dev (`naba.training.tuning`).
`bench/quality.py`'s TF-IDF + LR baselines are `fit_logistic` over word and character n-grams.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from naba.models.errors import DataError
from naba.models.lexical import LexicalHead, lexical_text, make_vectorizers, rule_columns
from naba.models.records import Record
from naba.models.rules import rule_feature_names
from naba.training.tuning import truth_matrix

logger = logging.getLogger(__name__)

# Weak regularisation: the n-gram space is wide and the labelled set small, so each label's few positives must
# be able to carry their words; calibration on dev then sets the scale of the scores.
C = 10.0


def fit_logistic(
    features: sparse.spmatrix | np.ndarray, truth: np.ndarray, c: float = C
) -> tuple[np.ndarray, np.ndarray]:
    """One class-balanced logistic regression per column of `truth` (n, K): weights (K, F) and biases (K,).

    A label with no positive (or no negative) example gets zero weights and bias: it adds nothing to the
    network's logit rather than a constant the data cannot support.
    """
    n_features, n_labels = features.shape[1], truth.shape[1]
    weights = np.zeros((n_labels, n_features), dtype=np.float32)
    bias = np.zeros(n_labels, dtype=np.float32)
    for k in range(n_labels):
        if len(np.unique(truth[:, k])) < 2:
            continue
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000)
        model.fit(features, truth[:, k])
        weights[k], bias[k] = model.coef_[0], model.intercept_[0]
    return weights, bias


def fit_lexical_head(records: Sequence[Record], labels: Sequence[str], min_df: int = 2) -> LexicalHead:
    """Fit the head on the labelled records (unlabelled ones, e.g. summary pairs, are skipped), over the n-grams
    and every labelling function of `naba.models.rules`.

    Raises:
        DataError: no labelled record, or no n-gram that occurs in `min_df` of them.
    """
    labelled = [r for r in records if r.labels is not None]
    if not labelled:
        raise DataError("the lexical head needs labelled training articles; none has labels")
    texts = [lexical_text(r) for r in labelled]
    vectorizers = make_vectorizers(min_df=min_df)
    try:
        ngrams = sparse.hstack([v.fit_transform(texts) for v in vectorizers])  # fits them
    except ValueError as exc:  # every n-gram pruned: a handful of tiny articles
        raise DataError(f"the lexical head found no n-gram in {min_df} labelled articles: {exc}") from exc
    names = rule_feature_names()
    features = sparse.hstack([ngrams, rule_columns(labelled, names)]).tocsr()
    truth = truth_matrix(labelled, labels).astype(int)
    weights, bias = fit_logistic(features, truth)
    missing = [label for label, column in zip(labels, truth.T, strict=True) if len(np.unique(column)) < 2]
    if missing:
        logger.warning("lexical head: no positive or no negative example of %s; it scores them 0", missing)
    logger.info(
        "lexical head: %d n-gram and %d rule features from %d labelled articles",
        ngrams.shape[1],
        len(names),
        len(labelled),
    )
    return LexicalHead(list(labels), vectorizers, names, weights, bias)
