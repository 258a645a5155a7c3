"""`naba retrain`: the served model retrained on the analysts' corrections, promoted only if it is not worse.

One run: the corrections (`naba.corrections`, the latest per article) and any labelled files given become the
training set; a candidate trains from the registry's current model (`--init-from`); candidate and current model
are scored on the same fixed evaluation set, which neither trains nor tunes on; the candidate is promoted when
its macro-F1 is at most `macro_f1_tolerance` below the current one's and no label's F1 drops by more than
`label_tolerance`, else the current model stays and the reasons are printed.

A run killed at any point changes nothing that is served: the candidate is built in a hidden work directory of
the registry, which the next run removes, and it reaches the registry only through `Registry.add` and
`Registry.promote`, each one atomic step. A lock file keeps two runs from working on one registry at once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transformers import TrainingArguments

from naba.models.artifacts import read_config, update_metrics
from naba.models.errors import DataError
from naba.models.predictor import Predictor
from naba.models.records import Record, read_records
from naba.registry import Registry, RegistryError
from naba.training.evaluate import evaluate
from naba.training.train import (
    DataArguments,
    ModelArguments,
    drop_dev_overlap,
    train_model,
    training_arguments,
)

logger = logging.getLogger(__name__)

LOCK = ".retrain.lock"
WORK_PREFIX = ".retrain-"


@dataclass(frozen=True)
class Gate:
    """When a candidate may replace the served model."""

    macro_f1_tolerance: float = 0.01  # the candidate's macro-F1 may be at most this much below the current's
    label_tolerance: float = 0.05  # and no label's F1 may drop by more than this


@dataclass(frozen=True)
class Comparison:
    """Candidate against current on the evaluation set, and the verdict."""

    current: dict[str, Any]  # `evaluate` metrics
    candidate: dict[str, Any]
    promote: bool
    reasons: list[str] = field(default_factory=list)

    def table(self) -> str:
        """Macro-F1 and every label's F1, side by side."""
        rows = [("macro-F1", self.current["macro_f1"], self.candidate["macro_f1"])]
        for label, scores in self.candidate["per_label"].items():
            before = self.current["per_label"].get(label, {}).get("f1")
            rows.append((label, before, scores["f1"]))
        lines = ["| | current | candidate |", "| --- | --- | --- |"]
        lines += [f"| {name} | {'—' if a is None else f'{a:.3f}'} | {b:.3f} |" for name, a, b in rows]
        return "\n".join(lines)


def compare(current: dict[str, Any], candidate: dict[str, Any], gate: Gate) -> Comparison:
    """Apply `gate` to two models' metrics on one evaluation set; a label new in the candidate is not judged."""
    reasons = []
    drop = current["macro_f1"] - candidate["macro_f1"]
    if drop > gate.macro_f1_tolerance:
        reasons.append(
            f"macro-F1 {candidate['macro_f1']:.3f} is {drop:.3f} below the current {current['macro_f1']:.3f} "
            f"(tolerance {gate.macro_f1_tolerance})"
        )
    for label, scores in current["per_label"].items():
        if label not in candidate["per_label"]:
            reasons.append(f"{label}: the candidate lost this label")
            continue
        label_drop = scores["f1"] - candidate["per_label"][label]["f1"]
        if label_drop > gate.label_tolerance:
            reasons.append(
                f"{label}: F1 {candidate['per_label'][label]['f1']:.3f} is {label_drop:.3f} below the current "
                f"{scores['f1']:.3f} (tolerance {gate.label_tolerance})"
            )
    return Comparison(current, candidate, promote=not reasons, reasons=reasons)


def _label_union(served: Sequence[str], records: Sequence[Record]) -> list[str]:
    new = sorted({label for r in records for label in r.labels or ()} - set(served))
    return [*served, *new]


def _row(record: Record) -> dict[str, Any]:
    """A record as the JSONL row it was read from (absent fields left out)."""
    return {key: value for key, value in asdict(record).items() if value is not None}


def keep_decisions(candidate_path: Path, served: Predictor) -> None:
    """Give the candidate the served model's calibration, thresholds and lexical weights: with no `cv` to tune
    them on held-out scores, the decisions of the model it continues from are the honest ones to keep (fine-tuning
    from it moves its scores a little; the evaluation then judges the pair as it will serve).

    Raises:
        DataError: the candidate has labels the served model lacks, which only `cv` can decide for.
    """
    candidate = read_config(candidate_path)
    if candidate.labels != served.config.labels:
        raise DataError(
            f"the corrections add labels {sorted(set(candidate.labels) - set(served.config.labels))}: their "
            "thresholds must be tuned, so retrain with --cv K"
        )
    served.config.tuned_on = f"kept from {served.ref.name} {served.ref.version}, retrained from it"
    update_metrics(candidate_path, candidate.metrics or {}, served.config)


@contextmanager
def _locked(registry: Registry) -> Iterator[None]:
    """Hold the registry's retrain lock; refuse at once when another run holds it."""
    registry.root.mkdir(parents=True, exist_ok=True)
    with (registry.root / LOCK).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RegistryError(f"another naba retrain is running on {registry.root}") from None
        yield


def retrain(
    registry: Registry,
    corrections: Sequence[dict[str, Any]],
    evaluation: Sequence[str | Path],
    *,
    extra_train: Sequence[str | Path] = (),
    model_args: ModelArguments | None = None,
    training_args: TrainingArguments | None = None,
    cv: int = 0,  # K-fold CV tunes the candidate's decisions; 0 keeps the served model's
    gate: Gate = Gate(),
    dry_run: bool = False,
    by: str = "naba retrain",
) -> Comparison:
    """Train a candidate from the current model on `corrections` and `extra_train`, compare it with the current
    model on `evaluation` and promote it when `gate` allows (never with `dry_run`).

    Raises:
        RegistryError: nothing is served yet, or another run holds the registry.
        DataError: no training articles, or a bad evaluation file.
    """
    with _locked(registry):
        for stale in registry.root.glob(f"{WORK_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)  # a killed run's leftovers
        registry.clean_staging()
        current_version = registry.current()
        if current_version is None:
            raise RegistryError(f"{registry.root} serves nothing yet: `naba models promote` a first version")
        current_path = registry.path(current_version)
        eval_records = read_records(list(evaluation))
        work = registry.root / f"{WORK_PREFIX}{os.getpid()}"
        work.mkdir()
        try:
            corrections_file = work / "corrections.jsonl"
            corrections_file.write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in corrections), "utf-8"
            )
            # The evaluation set stays unseen: its articles (same id or text) leave the corrections and files.
            records = drop_dev_overlap(read_records([corrections_file, *extra_train]), eval_records)
            if not records:
                raise DataError(
                    "nothing to retrain on outside the evaluation set (no corrections, no --train)"
                )
            train_file = work / "train.jsonl"
            train_file.write_text(
                "".join(json.dumps(_row(r), ensure_ascii=False) + "\n" for r in records), "utf-8"
            )
            version = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            model_args = model_args or ModelArguments()
            # The served model's labels stay, whether or not these corrections hold positives of each; labels
            # the analysts added are learnt as well.
            labels = model_args.labels or _label_union(read_config(current_path).labels, records)
            model_args = replace(model_args, init_from=str(current_path), version=version, labels=labels)
            data_args = DataArguments(train=[str(train_file)], output=str(work / "candidate"), cv=cv)
            training_args = training_args or training_arguments()
            training_args.output_dir = str(work)  # the Trainer's own files stay in the work directory too
            candidate_path = train_model(model_args, data_args, training_args)
            served = Predictor.from_dir(current_path, device="cpu")
            if not cv:
                keep_decisions(candidate_path, served)
            current = evaluate(served, eval_records)
            candidate = evaluate(Predictor.from_dir(candidate_path, device="cpu"), eval_records)
            comparison = compare(current, candidate, gate)
            if comparison.promote and not dry_run:
                added = registry.add(candidate_path, version)
                reason = f"macro-F1 {current['macro_f1']:.3f} -> {candidate['macro_f1']:.3f} on {len(eval_records)}"
                registry.promote(added, by=by, reason=f"{reason} evaluation articles")
            return comparison
        finally:
            shutil.rmtree(work, ignore_errors=True)
