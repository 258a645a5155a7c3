"""`naba train` (fine-tune an encoder into an artifact, `naba.training.train`), `naba fit-summary` (an artifact's
summary head refitted alone, `naba.training.summary_head`) and `naba build-starter` (the starter model,
`naba.training.starter`).

`naba train` parses into the library's own dataclasses (`ModelArguments`, `DataArguments`) and transformers'
`TrainingArguments`, as HF's example scripts do: every `Trainer` option is a flag (`--num_train_epochs`,
`--learning_rate`, `--seed`, ...), defaulting to `naba.training.train.TRAINER_DEFAULTS` where Naba's differ,
and `naba train args.json` reads them all from one file.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from transformers import TrainingArguments

from naba.cli.command import Command, NabaArgumentParser
from naba.training import starter
from naba.training.train import TRAINER_DEFAULTS, DataArguments, ModelArguments


def trainer_defaults(parser: NabaArgumentParser) -> None:
    parser.set_defaults(**TRAINER_DEFAULTS)


def run_train(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> None:
    from naba.training.train import train_model

    train_model(model_args, data_args, training_args)


TRAIN = Command(
    "train",
    (ModelArguments, DataArguments, TrainingArguments),
    run_train,
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    configure=trainer_defaults,
    hf_script=True,
)


@dataclass
class FitSummaryArguments:
    """The artifact to start from, the summary pairs, and the new artifact."""

    model: Path = field(metadata={"help": "The artifact to start from (not changed)."})
    train: list[str] = field(metadata={"help": "Files of articles with a 'summary'."})
    output: Path = field(metadata={"help": "The new artifact; must not exist."})
    epochs: int = 10
    learning_rate: float = 1e-3
    version: str | None = field(
        default=None, metadata={"help": "The new artifact's version (default: the old one)."}
    )
    weights_dtype: Literal["float32", "float16"] = field(
        default="float32", metadata={"help": "Weights on disk."}
    )


def run_fit_summary(args: FitSummaryArguments) -> None:
    from naba.training.summary_head import fit_summary

    fit_summary(
        args.model,
        args.train,
        args.output,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        version=args.version,
        weights_dtype=args.weights_dtype,
    )


FIT_SUMMARY = Command(
    "fit-summary",
    (FitSummaryArguments,),
    run_fit_summary,
    description="Fit an artifact's summary head on article/summary pairs with everything else frozen: tags, "
    "evidence, calibration and thresholds stay exactly as they are. Writes a new artifact.",
)


@dataclass
class BuildStarterArguments:
    """Where the starter model goes, and what it is trained on."""

    output: str = field(metadata={"help": "Artifact directory to create."})
    data_dir: str | None = field(
        default=None, metadata={"help": "Shared data directory (default: NABA_DATA_DIR)."}
    )
    seeds: Path = field(default=starter.SEEDS, metadata={"help": "Fallback data: the seed articles."})
    epochs: float = 4.0
    max_summary_articles: int = 1500


def run_build_starter(args: BuildStarterArguments) -> None:
    from naba.settings import get_settings

    data_dir = Path(args.data_dir) if args.data_dir else get_settings().data_dir
    starter.build_starter(
        args.output,
        data_dir,
        seeds=args.seeds,
        epochs=args.epochs,
        max_summary_articles=args.max_summary_articles,
    )


BUILD_STARTER = Command(
    "build-starter",
    (BuildStarterArguments,),
    run_build_starter,
    description=starter.__doc__,
)
