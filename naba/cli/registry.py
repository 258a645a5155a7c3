"""`naba models list|add|promote|rollback` (the model registry, `naba.registry`) and `naba retrain` (the served
model retrained on the analysts' corrections and promoted only if it is not worse, `naba.training.retrain`).

The service follows the registry when it serves `<registry>/current` with `NABA_WATCH_MODEL_S` set: a promotion
or rollback is then a hot reload, with no request dropped.
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainingArguments

from naba.cli.command import Command, NabaArgumentParser, UsageError
from naba.training.train import TRAINER_DEFAULTS, ModelArguments

logger = logging.getLogger("naba")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class RegistryArguments:
    """Which registry, and who is acting (recorded in its history)."""

    registry: Path = field(metadata={"help": "The registry directory (serve <registry>/current)."})
    by: str = field(default_factory=_user, metadata={"help": "Who is acting (default: this user)."})


@dataclass
class ChangeArguments:
    reason: str = field(metadata={"help": "Why, for the history."})
    version: str | None = field(default=None, metadata={"help": "The version (promote; add: its name)."})
    artifact: Path | None = field(default=None, metadata={"help": "The artifact to copy in (add)."})


def run_list(where: RegistryArguments) -> None:
    from naba.registry import Registry

    registry = Registry(where.registry)
    current = registry.current()
    for version in registry.versions():
        print(("* " if version == current else "  ") + version)  # noqa: T201 - the listing is the output
    for e in registry.history():
        print(f"{e.time} {e.action} {e.version} (was {e.previous}) by {e.by}: {e.reason}")  # noqa: T201


def run_add(where: RegistryArguments, change: ChangeArguments) -> None:
    from naba.registry import Registry

    if change.artifact is None:
        raise UsageError("naba models add needs --artifact")
    print(Registry(where.registry).add(change.artifact, change.version))  # noqa: T201


def run_promote(where: RegistryArguments, change: ChangeArguments) -> None:
    from naba.registry import Registry

    if change.version is None:
        raise UsageError("naba models promote needs --version")
    event = Registry(where.registry).promote(change.version, by=where.by, reason=change.reason)
    logger.info("now serving %s (was %s)", event.version, event.previous)


def run_rollback(where: RegistryArguments, change: ChangeArguments) -> None:
    from naba.registry import Registry

    event = Registry(where.registry).rollback(by=where.by, reason=change.reason)
    logger.info("rolled back to %s (from %s)", event.version, event.previous)


MODELS_LIST = Command("models list", (RegistryArguments,), run_list, description="Versions and history.")
MODELS_ADD = Command("models add", (RegistryArguments, ChangeArguments), run_add, description="Copy in.")
MODELS_PROMOTE = Command(
    "models promote", (RegistryArguments, ChangeArguments), run_promote, description="Serve a version."
)
MODELS_ROLLBACK = Command(
    "models rollback",
    (RegistryArguments, ChangeArguments),
    run_rollback,
    description="Serve again what was served before the current version.",
)


@dataclass
class RetrainArguments:
    """The registry, what to learn from, what to judge on, and the promotion rule."""

    registry: Path = field(metadata={"help": "The registry; its current model is the starting point."})
    eval: list[str] = field(
        metadata={"help": "The fixed evaluation set both models are scored on (never trained or tuned on)."}
    )
    train: list[str] = field(
        default_factory=list, metadata={"help": "Labelled files to add to the corrections."}
    )
    database_url: str | None = field(
        default=None, metadata={"help": "Where the corrections are (default: NABA_DATABASE_URL)."}
    )
    cv: int = field(
        default=0, metadata={"help": "Tune the candidate's decisions by K-fold CV (0: keep them)."}
    )
    tolerance: float = field(
        default=0.01, metadata={"help": "Promote only if macro-F1 is at most this much below the current's."}
    )
    label_tolerance: float = field(
        default=0.05, metadata={"help": "... and no label's F1 drops by more than this."}
    )
    dry_run: bool = field(default=False, metadata={"help": "Compare, never promote.", "flag": True})
    by: str = field(default_factory=_user, metadata={"help": "Who is acting (recorded in the history)."})


def trainer_defaults(parser: NabaArgumentParser) -> None:
    parser.set_defaults(**TRAINER_DEFAULTS)


def run_retrain(args: RetrainArguments, model_args: ModelArguments, training_args: TrainingArguments) -> int:
    from naba.corrections import CorrectionStore
    from naba.registry import Registry
    from naba.settings import get_settings
    from naba.training.retrain import Gate, retrain

    store = CorrectionStore(args.database_url or get_settings().database_url)
    try:
        rows = store.training_rows()
    finally:
        store.close()
    logger.info("%d corrected articles in the store", len(rows))
    comparison = retrain(
        Registry(args.registry),
        rows,
        args.eval,
        extra_train=args.train,
        model_args=model_args,
        training_args=training_args,
        cv=args.cv,
        gate=Gate(args.tolerance, args.label_tolerance),
        dry_run=args.dry_run,
        by=args.by,
    )
    print(comparison.table())  # noqa: T201 - the comparison is the output
    if not comparison.promote:
        print("kept the current model: " + "; ".join(comparison.reasons))  # noqa: T201
        return 4
    print("dry run: not promoted" if args.dry_run else "promoted the candidate")  # noqa: T201
    return 0


RETRAIN = Command(
    "retrain",
    (RetrainArguments, ModelArguments, TrainingArguments),
    run_retrain,
    description="Retrain the served model on the analysts' corrections; promote it only if it is not worse.",
    configure=trainer_defaults,
)
