"""`naba predict`: a model over an archive of articles, resumably (`naba.batch`)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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
    engine: Literal["local", "ray"] = field(
        default="local",
        metadata={"help": "Where the model runs: here, or on a pool of Ray actors (pip install naba[ray])."},
    )
    ray_address: str | None = field(
        default=None,
        metadata={"help": "With --engine ray: a running cluster (auto, ray://...); none: local."},
    )
    ray_actors: int = field(
        default=2,
        metadata={"help": "With --engine ray: actors, each holding the model.", "type": positive_int},
    )
    ray_cpus_per_actor: int = field(
        default=1, metadata={"help": "CPUs each actor reserves.", "type": positive_int}
    )
    ray_gpus_per_actor: float = field(
        default=0.0, metadata={"help": "GPUs each actor reserves (with --device cuda)."}
    )


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


def _engine(loading: LoadingArguments, args: PredictArguments) -> tuple[Any, int]:
    """The predictor the run calls, and how many articles each call gets: a batch here, or with Ray a whole
    chunk, which the actors share out in batches."""
    if args.engine == "local":
        return load_predictor(loading), args.batch_size
    try:
        from naba.ray_engine import RayAnalyzer
    except ImportError as exc:  # ray itself is missing: say how to get it
        raise UsageError(f"--engine ray needs Ray: pip install 'naba[ray]' ({exc})") from exc
    ray = RayAnalyzer(
        loading.model,
        actors=args.ray_actors,
        batch_size=args.batch_size,
        address=args.ray_address,
        device=loading.device,
        backend=loading.backend,
        quantize=loading.quantize,
        dtype=loading.dtype,
        cpus_per_actor=args.ray_cpus_per_actor,
        gpus_per_actor=args.ray_gpus_per_actor,
    )
    return ray, args.chunk_size


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
    predictor, batch_size = _engine(loading, args)
    try:
        report = run_batch(
            predictor,
            args.input,
            args.output,
            errors_path=args.errors,
            batch_size=batch_size,
            chunk_size=args.chunk_size,
            options=options,
            max_chars=get_settings().max_chars,
            model=identity,
            engine={
                "backend": predictor.backend,
                "device": str(predictor.device),
                "dtype": str(predictor.dtype),
                **({"engine": f"ray, {args.ray_actors} actors"} if args.engine == "ray" else {}),
            },
            progress=not args.no_progress,
        )
    except (BatchUsageError, ResumeRefusedError) as exc:  # the files changed since `check_run`
        logger.error("%s", exc.message)
        return 2
    finally:
        if args.engine == "ray":
            predictor.close()
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
