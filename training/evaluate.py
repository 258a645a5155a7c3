"""`naba evaluate`: score a model on labelled articles and reference summaries through the same predictor.

Per-label precision, recall and F1, micro and macro F1 and calibration (ECE) over articles that carry labels;
how often the evidence sentences hit the annotators' quotes, over articles that carry quotes; ROUGE-1/2/L
(Arabic-aware) of the summaries over articles that carry a reference summary. `--report DIR` also writes
tables, plots and the worst errors for analysts (see `naba.training.report`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from naba.models.predictor import Predictor, Scores
from naba.models.records import Record
from naba.models.results import Analysis, ResultOptions
from naba.training.metrics import classification_report, expected_calibration_error
from naba.training.rouge import rouge
from naba.training.tuning import truth_matrix

logger = logging.getLogger(__name__)

ECE_BINS = 10  # equal-width calibration bins; dev sets of a few hundred articles leave enough in each


@dataclass(frozen=True)
class Scored:
    """One article's analysis and the raw model scores behind it."""

    analysis: Analysis
    scores: Scores


def _length_batches(records: Sequence[Record], batch_size: int) -> Iterator[list[int]]:
    """Record indices in batches of similar text length (less padding), with a progress bar."""
    order = sorted(range(len(records)), key=lambda i: len(records[i].text))
    for start in tqdm(range(0, len(order), batch_size), desc="analysing", unit="batch", leave=False):
        yield order[start : start + batch_size]


def predict_records(
    predictor: Predictor, records: list[Record], summary_sentences: int | None = None, batch_size: int = 16
) -> list[Analysis]:
    """Analyse records in length-sorted batches (less padding) and return the results in record order."""
    results: list[Analysis | None] = [None] * len(records)
    for chunk in _length_batches(records, batch_size):
        analyses = predictor.analyze([records[i].article for i in chunk], ResultOptions(summary_sentences))
        for i, analysis in zip(chunk, analyses, strict=True):
            results[i] = analysis
    return [r for r in results if r is not None]


def score_records(
    predictor: Predictor, records: list[Record], summary_sentences: int | None = None, batch_size: int = 16
) -> list[Scored]:
    """Like `predict_records`, but keep each article's raw scores beside its analysis.

    The scores give evidence for labels the model did not predict (`Predictor.evidence_indices`), without a
    second model run: this runs the predictor's own stages, `encode`, `score`, `result`, as `analyze` does.
    """
    results: list[Scored | None] = [None] * len(records)
    for chunk in _length_batches(records, batch_size):
        encoded = [predictor.encode(records[i].article) for i in chunk]
        for i, enc, scores in zip(chunk, encoded, predictor.score(encoded), strict=True):
            results[i] = Scored(predictor.result(enc, scores, ResultOptions(summary_sentences)), scores)
    return [r for r in results if r is not None]


def label_arrays(
    labels: Sequence[str], records: Sequence[Record], scored: Sequence[Scored]
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Indices of the labelled records, and their (n, k) predicted probabilities and 0/1 gold labels."""
    rows = [i for i, r in enumerate(records) if r.labels is not None]
    probs = np.array([[scored[i].analysis.scores[lbl] for lbl in labels] for i in rows]).reshape(
        -1, len(labels)
    )
    truth = truth_matrix([records[i] for i in rows], labels).astype(int)
    return rows, probs, truth


def _squeeze(text: str) -> str:
    return "".join(text.split())


def _occurrences(body: str, piece: str) -> list[tuple[int, int]]:
    """Every `(start, end)` where `piece` occurs in `body`, both without whitespace (`body` already is)."""
    needle = _squeeze(piece)
    spans: list[tuple[int, int]] = []
    at = body.find(needle) if needle else -1
    while at >= 0:
        spans.append((at, at + len(needle)))
        at = body.find(needle, at + 1)
    return spans


def evidence_hit(body: str, quote: str, evidence: Sequence[str]) -> bool | None:
    """Whether the evidence sentences point at the annotator's quote; None when the quote is not in `body`.

    The quote and each evidence sentence are located in the article body with all whitespace removed (line
    breaks and double spaces differ between a quote and a sentence split from the text). It is a hit when
    an evidence sentence and the quote share at least one character: the sentence holds the quote, holds
    part of it (a quote may run over two sentences), or lies inside it. Text that occurs more than once in
    the body counts at every place it occurs.

    Args:
        body: the article text the evidence sentences were taken from (never the title).
        quote: the gold evidence for one label.
        evidence: the sentences the model gives for that label.
    """
    text = _squeeze(body)
    quoted = _occurrences(text, quote)
    if not quoted:
        return None
    found = [span for sentence in evidence for span in _occurrences(text, sentence)]
    return any(start < q_end and q_start < end for start, end in found for q_start, q_end in quoted)


def evidence_metrics(
    predictor: Predictor, records: Sequence[Record], scored: Sequence[Scored]
) -> dict[str, Any]:
    """How often the model's evidence hits the gold quote (`evidence_hit`), over gold (article, label) pairs.

    `evidence_hit_rate` counts the pairs where the model predicted the gold label, with the evidence it
    returned: what an analyst sees. `evidence_hit_rate_all` counts every gold pair, with the evidence the
    model gives for the gold label whether it passed the threshold or not: evidence quality apart from
    tagging. Quotes not found in the body are left out of both and counted in `evidence_quotes_not_found`.
    A rate over no pairs is None. Returns {} when no article carries a quote for a label the model knows.
    """
    index = {label: k for k, label in enumerate(predictor.labels)}
    counts = {
        label: dict.fromkeys(("pairs", "hits", "pairs_all", "hits_all", "not_found"), 0) for label in index
    }
    quotes = 0
    for record, item in zip(records, scored, strict=True):
        returned = {r.label: r.evidence for r in item.analysis.labels}
        for label, quote in (record.evidence or {}).items():
            if label not in index:
                continue
            quotes += 1
            count = counts[label]
            sentences = item.analysis.sentences
            given = [sentences[i] for i in predictor.evidence_indices(sentences, item.scores, index[label])]
            hit_all = evidence_hit(record.text, quote, given)
            if hit_all is None:
                count["not_found"] += 1
                continue
            count["pairs_all"] += 1
            count["hits_all"] += hit_all
            if label in returned:
                count["pairs"] += 1
                count["hits"] += bool(evidence_hit(record.text, quote, returned[label]))
    if not quotes:
        return {}

    def rate(hits: int, pairs: int) -> float | None:
        return hits / pairs if pairs else None

    total = {key: sum(c[key] for c in counts.values()) for key in ("pairs", "hits", "pairs_all", "hits_all")}
    not_found = sum(c["not_found"] for c in counts.values())
    if not_found:
        logger.warning("%d evidence quotes are not in the article body and are left out", not_found)
    return {
        "evidence_hit_rate": rate(total["hits"], total["pairs"]),
        "evidence_pairs": total["pairs"],
        "evidence_hit_rate_all": rate(total["hits_all"], total["pairs_all"]),
        "evidence_pairs_all": total["pairs_all"],
        "evidence_quotes_not_found": not_found,
        "evidence_per_label": {
            label: {
                "hit_rate": rate(c["hits"], c["pairs"]),
                "pairs": c["pairs"],
                "hit_rate_all": rate(c["hits_all"], c["pairs_all"]),
                "pairs_all": c["pairs_all"],
                "quotes_not_found": c["not_found"],
            }
            for label, c in counts.items()
        },
    }


def compute_metrics(
    predictor: Predictor, records: list[Record], scored: list[Scored], summary_sentences: int = 1
) -> dict[str, Any]:
    """The metrics of `evaluate`, from records already scored by `score_records`."""
    metrics: dict[str, Any] = {"n_articles": len(records)}
    labels = predictor.labels
    rows, probs, truth = label_arrays(labels, records, scored)
    if rows:
        unknown = sorted({lbl for i in rows for lbl in records[i].labels or () if lbl not in labels})
        if unknown:
            logger.warning("labels the model does not know are ignored: %s", unknown)
        pred = np.array(
            [[int(lbl in {x.label for x in scored[i].analysis.labels}) for lbl in labels] for i in rows]
        )
        metrics.update(classification_report(truth, pred.reshape(truth.shape), labels))
        metrics["n_labelled"] = len(rows)
        ece, mean_ece = expected_calibration_error(probs, truth, ECE_BINS)
        metrics["ece"] = {
            "mean": mean_ece,
            "per_label": {label: float(e) for label, e in zip(labels, ece, strict=True)},
            "n_bins": ECE_BINS,
        }
    metrics.update(evidence_metrics(predictor, records, scored))
    summarised = [(r, s.analysis) for r, s in zip(records, scored, strict=True) if r.summary]
    if summarised:
        metrics["rouge"] = rouge([a.summary for _, a in summarised], [r.summary or "" for r, _ in summarised])
        metrics["n_summaries"] = len(summarised)
        metrics["summary_sentences"] = summary_sentences
    return metrics


def evaluate(predictor: Predictor, records: list[Record], summary_sentences: int = 1) -> dict[str, Any]:
    """Metrics of `predictor` on `records`: tagging and calibration where they have labels, evidence where
    they have quotes, ROUGE where they have summaries."""
    scored = score_records(predictor, records, summary_sentences)
    return compute_metrics(predictor, records, scored, summary_sentences)
