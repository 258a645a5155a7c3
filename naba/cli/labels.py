"""`naba weak-label` (labels from the annotation guide's rules, `naba.training.weak`) and `naba pseudo-label`
(a trained model's confident calls, `naba.training.pseudo`): training data from an unlabelled corpus."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from naba.cli import LoadingArguments, load_predictor, offer_torch_and_onnx
from naba.cli.command import Command, NabaArgumentParser, UsageError
from naba.training import pseudo, weak

logger = logging.getLogger("naba")


def labelled_dir() -> Path:
    """`<NABA_DATA_DIR>/labelled`, where the default training and hold-out files are."""
    from naba.settings import get_settings

    return get_settings().data_dir / "labelled"


@dataclass
class WeakLabelArguments:
    """The corpus to label and where, the labelled files to fit on and hold out, and what to measure."""

    corpus: list[str] = field(
        default_factory=list, metadata={"help": "Unlabelled articles: .jsonl(.gz)/.csv(.gz)."}
    )
    output: Path | None = field(default=None, metadata={"help": "Weakly labelled articles (JSONL)."})
    train: Path | None = field(
        default=None,
        metadata={
            "help": "Labelled articles to fit the functions' accuracies on "
            "(default: <NABA_DATA_DIR>/labelled/train.jsonl when present, else the hand-set priors)."
        },
    )
    holdout: list[Path] | None = field(
        default=None,
        metadata={
            "help": "Labelled files whose articles are never emitted, besides --train and --evaluate "
            "(default: <NABA_DATA_DIR>/labelled/dev.jsonl when present).",
            "nargs": "*",
        },
    )
    min_confidence: float = field(
        default=weak.DEFAULT_MIN_CONFIDENCE,
        metadata={"help": "Decide a label when the model is at least this sure, in [0.5, 1); else abstain."},
    )
    max_articles: int | None = field(default=None, metadata={"help": "Stop after reading N articles."})
    exclude_corpus: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Skip these corpora's articles (told by id prefix, e.g. SaudiNewsNet ids start with SNN-).",
            "choices": sorted(weak.CORPUS_ID_PREFIXES),
        },
    )
    evaluate: Path | None = field(
        default=None, metadata={"help": "Labelled file (dev) to measure the labeller on."}
    )
    metrics: Path | None = field(default=None, metadata={"help": "Write --evaluate's metrics here (JSON)."})
    no_progress: bool = field(default=False, metadata={"help": "Hide the progress bar.", "flag": True})


def run_weak_label(args: WeakLabelArguments) -> None:
    from naba.models.records import Record, read_records
    from naba.models.rules import LABELS

    if bool(args.corpus) != bool(args.output):
        raise UsageError("--corpus and --output go together")
    if not args.corpus and not args.evaluate:
        raise UsageError("nothing to do: give --corpus and --output, or --evaluate, or both")
    if not 0.5 <= args.min_confidence < 1.0:
        raise UsageError(f"--min-confidence must be in [0.5, 1), got {args.min_confidence}")
    if args.max_articles is not None and args.max_articles < 1:
        raise UsageError("--max-articles must be at least 1")

    labelled = labelled_dir()
    default_train = labelled / "train.jsonl"
    train_file = args.train or (default_train if default_train.is_file() else None)
    holdout = (
        args.holdout if args.holdout is not None else [p for p in [labelled / "dev.jsonl"] if p.is_file()]
    )
    if train_file is not None:
        train = read_records([train_file], known_labels=LABELS)
        model = weak.LabelModel.fit(train, args.min_confidence)
        logger.info("fitted the functions' accuracies on %d articles of %s", len(train), train_file)
    else:
        train = []
        model = weak.LabelModel.from_priors(args.min_confidence)
        logger.warning("no labelled training file: the functions keep their hand-set prior accuracies")

    dev: list[Record] = []
    if args.evaluate:
        dev = read_records([args.evaluate], known_labels=LABELS)
        metrics: dict[str, Any] = weak.evaluate(model, dev)
        if args.metrics:
            args.metrics.parent.mkdir(parents=True, exist_ok=True)
            args.metrics.write_text(json.dumps(metrics, ensure_ascii=False, indent=2), "utf-8")
        print(weak.format_evaluation(metrics))  # noqa: T201 - the tables are this option's output
    if args.corpus and args.output:
        held = [*train, *dev, *(read_records(holdout) if holdout else [])]
        report = weak.weak_label(
            args.corpus,
            args.output,
            model,
            exclude_corpora=args.exclude_corpus,
            exclude_texts=held,
            max_articles=args.max_articles,
            progress=not args.no_progress,
        )
        logger.info("%s; wrote %s", report, args.output)


WEAK_LABEL = Command(
    "weak-label",
    (WeakLabelArguments,),
    run_weak_label,
    description=weak.__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
)


@dataclass
class PseudoLabelArguments:
    """The corpus to label and where, how sure the model must be, and what to leave out."""

    corpus: list[str] = field(metadata={"help": "Unlabelled articles: .jsonl(.gz)/.csv(.gz)."})
    output: Path = field(metadata={"help": "Pseudo-labelled articles (JSONL)."})
    min_confidence: float = field(
        default=pseudo.DEFAULT_MIN_CONFIDENCE,
        metadata={
            "help": "Decide a label when the model is at least this sure, in [0.5, 1); skip the article otherwise."
        },
    )
    holdout: list[Path] | None = field(
        default=None,
        metadata={
            "help": "Labelled files whose articles are never emitted (default: <NABA_DATA_DIR>/labelled/train.jsonl "
            "and dev.jsonl, where present).",
            "nargs": "*",
        },
    )
    exclude_corpus: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Skip these corpora's articles (told by id prefix).",
            "choices": sorted(weak.CORPUS_ID_PREFIXES),
        },
    )
    max_articles: int | None = field(default=None, metadata={"help": "Stop after reading N articles."})
    max_unlabelled: int | None = field(
        default=None, metadata={"help": "Write at most N articles with no label."}
    )
    batch_size: int = field(default=16, metadata={"help": "Articles per forward pass."})
    no_progress: bool = field(default=False, metadata={"help": "Hide the progress bar.", "flag": True})


def pseudo_label_options(parser: NabaArgumentParser) -> None:
    offer_torch_and_onnx(parser)
    parser.set_option("model", help="Naba artifact that labels the corpus.")


def run_pseudo_label(loading: LoadingArguments, args: PseudoLabelArguments) -> None:
    from naba.models.records import read_records

    if not 0.5 <= args.min_confidence < 1.0:
        raise UsageError(f"--min-confidence must be in [0.5, 1), got {args.min_confidence}")
    for name in ("max_articles", "max_unlabelled", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "max_unlabelled" else 1):
            raise UsageError(f"--{name.replace('_', '-')} is too small: {value}")

    labelled = labelled_dir()
    holdout = (
        args.holdout
        if args.holdout is not None
        else [p for p in (labelled / "train.jsonl", labelled / "dev.jsonl") if p.is_file()]
    )
    predictor = load_predictor(loading)
    report = weak.label_corpus(
        args.corpus,
        args.output,
        pseudo.decider(predictor, args.min_confidence),
        batch_size=args.batch_size,
        exclude_corpora=args.exclude_corpus,
        exclude_texts=read_records(holdout) if holdout else [],
        max_articles=args.max_articles,
        max_unlabelled=args.max_unlabelled,
        progress=not args.no_progress,
    )
    logger.info("%s; wrote %s", report, args.output)


PSEUDO_LABEL = Command(
    "pseudo-label",
    (LoadingArguments, PseudoLabelArguments),
    run_pseudo_label,
    description=pseudo.__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
    configure=pseudo_label_options,
)
