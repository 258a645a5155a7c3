"""`naba evaluate`: score a model on labelled articles and reference summaries through the same predictor.

Per-label precision, recall and F1, micro and macro F1 over articles that carry labels, and ROUGE-1/2/L
(Arabic-aware) of the summaries over articles that carry a reference summary.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from models.predictor import Predictor
from models.results import Analysis, Article
from training.data import Record, read_records
from training.metrics import classification_report, format_table
from training.rouge import rouge

logger = logging.getLogger(__name__)


def predict_records(
    predictor: Predictor, records: list[Record], summary_sentences: int | None = None, batch_size: int = 16
) -> list[Analysis]:
    """Analyse records in length-sorted batches (less padding) and return the results in record order."""
    order = sorted(range(len(records)), key=lambda i: len(records[i].text))
    results: list[Analysis | None] = [None] * len(records)
    for start in tqdm(range(0, len(order), batch_size), desc="analysing", unit="batch", leave=False):
        chunk = order[start : start + batch_size]
        articles = [Article(records[i].text, records[i].title, records[i].id) for i in chunk]
        for i, analysis in zip(chunk, predictor.analyze(articles, summary_sentences), strict=True):
            results[i] = analysis
    return [r for r in results if r is not None]


def evaluate(predictor: Predictor, records: list[Record], summary_sentences: int = 1) -> dict[str, Any]:
    """Metrics of `predictor` on `records`: tagging where they have labels, ROUGE where they have summaries."""
    analyses = predict_records(predictor, records, summary_sentences)
    metrics: dict[str, Any] = {"n_articles": len(records)}
    labels = predictor.labels
    tagged = [(r, a) for r, a in zip(records, analyses, strict=True) if r.labels is not None]
    if tagged:
        unknown = sorted({lbl for r, _ in tagged for lbl in r.labels or () if lbl not in labels})
        if unknown:
            logger.warning("labels the model does not know are ignored: %s", unknown)
        truth = np.array([[int(lbl in (r.labels or ())) for lbl in labels] for r, _ in tagged])
        pred = np.array([[int(lbl in {x.label for x in a.labels}) for lbl in labels] for _, a in tagged])
        metrics.update(classification_report(truth, pred, labels))
        metrics["n_labelled"] = len(tagged)
    summarised = [(r, a) for r, a in zip(records, analyses, strict=True) if r.summary]
    if summarised:
        metrics["rouge"] = rouge([a.summary for _, a in summarised], [r.summary or "" for r, _ in summarised])
        metrics["n_summaries"] = len(summarised)
        metrics["summary_sentences"] = summary_sentences
    return metrics


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="naba evaluate", description=__doc__)
    parser.add_argument("--model", required=True, help="Naba artifact directory.")
    parser.add_argument(
        "--data", required=True, nargs="+", help="JSONL/CSV files with labels and/or summaries."
    )
    parser.add_argument("--output", default="metrics.json", help="Where to write the metrics (JSON).")
    parser.add_argument("--summary-sentences", type=int, default=1, help="Summary length for ROUGE.")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args(argv)

    predictor = Predictor.from_dir(args.model, device=args.device)
    records = read_records(args.data)
    metrics = evaluate(predictor, records, args.summary_sentences)
    metrics["data"] = ", ".join(args.data)
    metrics["model"] = {"name": predictor.ref.name, "version": predictor.ref.version, "path": str(args.model)}
    Path(args.output).write_text(json.dumps(metrics, ensure_ascii=False, indent=2), "utf-8")
    logger.info("wrote %s", args.output)
    print(format_table(metrics, metrics.get("rouge")))  # noqa: T201 - the table is this command's output
    return metrics
