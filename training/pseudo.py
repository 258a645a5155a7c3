"""`naba pseudo-label`: self-training data, a trained model's confident calls on unlabelled articles.

A model trained on the labelled set scores corpus articles through the same predictor the service uses. An
article becomes a training record when the model is sure of every label: a calibrated probability of at least
`--min-confidence` is a positive, at most `1 - min_confidence` a negative, anything between makes the article
skipped. A positive label's evidence is the first sentence the predictor quotes for it. Training a model
again with these records added (`naba train --train labelled.jsonl pseudo.jsonl`) is self-training;
`bench/quality.py --ablation` measures what it adds. Streaming, exclusions and the output format are
`naba weak-label`'s (`naba.training.weak.label_corpus`): the two differ only in who decides.

    naba pseudo-label --model artifacts/v1 --corpus ant_multisource.jsonl.gz --output pseudo.jsonl
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from naba.models.preprocessing import sentence_spans
from naba.models.records import Record
from naba.training.weak import (
    DEFAULT_MIN_CONFIDENCE,
    Decide,
    Decision,
)

if TYPE_CHECKING:
    from naba.models.predictor import Predictor

logger = logging.getLogger(__name__)


def model_decisions(
    predictor: Predictor, records: Sequence[Record], min_confidence: float
) -> list[dict[str, Decision]]:
    """The predictor's call on every label of each record: positive, negative, or None where it is unsure.

    Args:
        min_confidence: in [0.5, 1); a label is decided when its calibrated probability p has
            `max(p, 1 - p) >= min_confidence`.
    """
    encoded = [predictor.encode(r.article) for r in records]
    calls = []
    for record, enc, scores in zip(records, encoded, predictor.score(encoded), strict=True):
        spans = sentence_spans(record.text)  # the predictor's sentences are exactly these spans of the text
        decisions = {}
        for k, label in enumerate(predictor.labels):
            p = float(scores.label_probs[k])
            value = True if p >= min_confidence else False if p <= 1.0 - min_confidence else None
            evidence = None
            if value:
                quoted = predictor.evidence_indices(enc.sentences, scores, k)
                evidence = spans[quoted[0]] if quoted else None
            decisions[label] = Decision(value, p, evidence)
        calls.append(decisions)
    return calls


def decider(predictor: Predictor, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> Decide:
    """`model_decisions` of `predictor` as `label_corpus` calls them: pseudo-labelling is
    `label_corpus(corpus, output, decider(predictor), batch_size=16, ...)`."""
    return lambda records: model_decisions(predictor, records, min_confidence)
