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

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from naba.models.predictor import Predictor, add_loading_arguments
from naba.models.preprocessing import sentence_spans
from naba.models.records import Record, read_records
from naba.training.weak import (
    CORPUS_ID_PREFIXES,
    DEFAULT_MIN_CONFIDENCE,
    Decide,
    Decision,
    WeakLabelReport,
    label_corpus,
)

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


def main(argv: list[str] | None = None) -> WeakLabelReport:
    parser = argparse.ArgumentParser(
        prog="naba pseudo-label", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="Naba artifact that labels the corpus.")
    parser.add_argument(
        "--corpus", nargs="+", required=True, help="Unlabelled articles: .jsonl(.gz)/.csv(.gz)."
    )
    parser.add_argument("--output", type=Path, required=True, help="Pseudo-labelled articles (JSONL).")
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=DEFAULT_MIN_CONFIDENCE,
        help="Decide a label when the model is at least this sure, in [0.5, 1); skip the article otherwise.",
    )
    parser.add_argument(
        "--holdout",
        type=Path,
        nargs="*",
        default=None,
        help="Labelled files whose articles are never emitted (default: <NABA_DATA_DIR>/labelled/train.jsonl "
        "and dev.jsonl, where present).",
    )
    parser.add_argument(
        "--exclude-corpus",
        nargs="+",
        default=[],
        choices=sorted(CORPUS_ID_PREFIXES),
        help="Skip these corpora's articles (told by id prefix).",
    )
    parser.add_argument("--max-articles", type=int, default=None, help="Stop after reading N articles.")
    parser.add_argument(
        "--max-unlabelled", type=int, default=None, help="Write at most N articles with no label."
    )
    parser.add_argument("--batch-size", type=int, default=16, help="Articles per forward pass.")
    add_loading_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    args = parser.parse_args(argv)
    if not 0.5 <= args.min_confidence < 1.0:
        parser.error(f"--min-confidence must be in [0.5, 1), got {args.min_confidence}")
    for name in ("max_articles", "max_unlabelled", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "max_unlabelled" else 1):
            parser.error(f"--{name.replace('_', '-')} is too small: {value}")

    from naba.settings import get_settings

    labelled_dir = get_settings().data_dir / "labelled"
    holdout = (
        args.holdout
        if args.holdout is not None
        else [p for p in (labelled_dir / "train.jsonl", labelled_dir / "dev.jsonl") if p.is_file()]
    )
    predictor = Predictor.from_args(args)
    report = label_corpus(
        args.corpus,
        args.output,
        decider(predictor, args.min_confidence),
        batch_size=args.batch_size,
        exclude_corpora=args.exclude_corpus,
        exclude_texts=read_records(holdout) if holdout else [],
        max_articles=args.max_articles,
        max_unlabelled=args.max_unlabelled,
        progress=not args.no_progress,
    )
    logger.info("%s; wrote %s", report, args.output)
    return report
