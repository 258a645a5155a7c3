"""`naba pretrain`: masked-LM pretraining of a BERT encoder on raw Arabic text (`naba.training.pretrain`).

Parsed as `naba train` is: into the library's `PretrainArguments` and transformers' `TrainingArguments`, every
`Trainer` option a flag (`--max_steps`, `--bf16`, ...) defaulting to `naba.training.pretrain.TRAINER_DEFAULTS`
where Naba's differ, or all of them from one JSON file (`naba pretrain args.json`).
"""

from __future__ import annotations

import argparse

from transformers import TrainingArguments

from naba.cli.command import Command, NabaArgumentParser
from naba.training.pretrain import TRAINER_DEFAULTS, PretrainArguments


def trainer_defaults(parser: NabaArgumentParser) -> None:
    parser.set_defaults(**TRAINER_DEFAULTS)


def run(args: PretrainArguments, training_args: TrainingArguments) -> None:
    from naba.training.pretrain import pretrain_encoder

    pretrain_encoder(args, training_args)


PRETRAIN = Command(
    "pretrain",
    (PretrainArguments, TrainingArguments),
    run,
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    configure=trainer_defaults,
    hf_script=True,
)
