"""`naba predict`: a model over an archive of articles, resumably (`naba.batch`)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path

from naba.cli import EXIT_INCOMPLETE, LoadingArguments, load_predictor
from naba.cli.command import Command, NabaArgumentParser, UsageError, positive_int, ratio
from naba.models.errors import DataError
from naba.models.results import OperatingPoint, ResultOptions

logger = logging.getLogger("naba")

EPILOG = f"""\
Resuming: rerun with the same --output to skip the articles already there. The settings that shape a result
(model, operating point, summary length) are kept in <output stem>.run.json; a rerun with other ones is refused
(exit 2): name a new --output. Rows without an id are named line-<n> by their line number, so resume only over
the same, unchanged input, or give every article an id.

Exit codes: 0 every input line has its result; {EXIT_INCOMPLETE} the run finished but some lines are in the
errors file (or the input could not be read to its end); 2 bad arguments, or an output that cannot be resumed
(nothing was written); 1 any other error (the model cannot be loaded, ...).
"""


@dataclass
class PredictArguments:
    """What to read, where the results go, and how each result is shaped."""

    input: Path = field(metadata={"help": "Articles: .jsonl, .jsonl.gz or .csv."})
    output: Path = field(
        metadata={
            "help": "Results (plain JSONL); rerun to resume. Rows without an id are named line-<n>: resume only "
            "over the same, unchanged input."
        }
    )
    errors: Path | None = field(
        default=None, metadata={"help": "Bad lines (default: <output stem>.errors.jsonl)."}
    )
    batch_size: int = field(  # the command's default is NABA_BATCH_SIZE, read when parsing (`configure`)
        default=16,
        metadata={"help": "Articles per forward pass (default: NABA_BATCH_SIZE).", "type": positive_int},
    )
    chunk_size: int = field(
        default=1024,
        metadata={
            "help": "Articles read, analysed and fsynced together; a killed run redoes at most one chunk.",
            "type": positive_int,
        },
    )
    summary_sentences: int | None = field(
        default=None,
        metadata={"help": "Sentences per summary.", "type": positive_int, "exclusive": "summary length"},
    )
    summary_ratio: float | None = field(
        default=None,
        metadata={
            "help": "Summary length as a share r of each article's sentences, 0 < r <= 1: max(1, ceil(r * n)).",
            "type": ratio,
            "exclusive": "summary length",
        },
    )
    operating_point: OperatingPoint = field(
        default="balanced",
        metadata={
            "help": "Which thresholds tag: balanced (max F1 on dev), precision (max F0.5) or recall (max F2)."
        },
    )
    no_progress: bool = field(default=False, metadata={"help": "Hide the progress bar.", "flag": True})


def configure(parser: NabaArgumentParser) -> None:
    """The model, batch size and how the model loads default to the settings (NABA_*), as the service's do."""
    from naba.settings import get_settings

    settings = get_settings()
    parser.set_option("model", required=False)
    parser.set_defaults(
        model=settings.model_dir,
        batch_size=settings.batch_size,
        device=settings.device,
        backend=settings.backend,
        quantize=settings.quantize,
        dtype=settings.dtype,
    )


def run(loading: LoadingArguments, args: PredictArguments) -> int:
    from naba.batch import (
        BatchUsageError,
        ResumeRefusedError,
        check_run,
        model_identity,
        run_batch,
        run_settings,
    )
    from naba.settings import get_settings

    identity = model_identity(loading.model)  # None when unreadable: loading it below says why
    options = ResultOptions(args.summary_sentences, args.summary_ratio, operating_point=args.operating_point)
    try:  # everything that can be refused is refused before the model loads
        check_run(args.input, args.output, args.errors, run_settings(identity, options) if identity else None)
    except (BatchUsageError, DataError) as exc:
        raise UsageError(exc.message) from exc
    predictor = load_predictor(loading)
    try:
        report = run_batch(
            predictor,
            args.input,
            args.output,
            errors_path=args.errors,
            batch_size=args.batch_size,
            chunk_size=args.chunk_size,
            options=options,
            max_chars=get_settings().max_chars,
            model=identity,
            engine={
                "backend": predictor.backend,
                "device": str(predictor.device),
                "dtype": str(predictor.dtype),
            },
            progress=not args.no_progress,
        )
    except (BatchUsageError, ResumeRefusedError) as exc:  # the files changed since `check_run`
        logger.error("%s", exc.message)
        return 2
    logger.info("%s", report)
    if not report.complete:
        logger.warning(
            "%d of %d input lines could not be analysed: see %s",
            report.errors,
            report.total_lines,
            report.errors_path,
        )
        return EXIT_INCOMPLETE
    return 0


PREDICT = Command(
    "predict",
    (LoadingArguments, PredictArguments),
    run,
    description="Run a model over an archive of articles.",
    epilog=EPILOG,
    formatter_class=argparse.RawDescriptionHelpFormatter,
    configure=configure,
)
