"""`naba evaluate`: score an artifact on labelled data and reference summaries (`naba.training.evaluate`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from naba.cli import LoadingArguments, load_predictor, offer_torch_and_onnx
from naba.cli.command import Command, UsageError
from naba.training import evaluate

logger = logging.getLogger("naba")


@dataclass
class EvaluateArguments:
    """What to score the model on, and what to write."""

    data: list[str] = field(metadata={"help": "JSONL/CSV files with labels and/or summaries."})
    output: str = field(default="metrics.json", metadata={"help": "Where to write the metrics (JSON)."})
    summary_sentences: int = field(default=1, metadata={"help": "Summary length for ROUGE."})
    report: str | None = field(
        default=None,
        metadata={
            "help": "Also write a report into DIR (created if missing, files overwritten): metrics.json, "
            "labels.md, pr_<label>.png, reliability.png and errors.md.",
            "metavar": "DIR",
        },
    )
    update_card: bool = field(
        default=False,
        metadata={
            "help": "Also write these metrics into the model's card (naba_config.json, metrics.json, README.md), "
            "in place of those measured when it was trained: for when Naba's predictor changed since. Weights "
            "are kept as they are, and so are the decisions unless --retune.",
            "flag": True,
        },
    )
    retune: bool = field(
        default=False,
        metadata={
            "help": "First refit the calibration and every operating point's thresholds on the labelled articles "
            "of --data, as naba train does on its dev set (say, a new or relabelled dev set), then measure; with "
            "--update-card the new decisions are written into the model. Metrics measured on the data tuned on "
            "are optimistic.",
            "flag": True,
        },
    )


def run(loading: LoadingArguments, args: EvaluateArguments) -> None:
    from naba.models.artifacts import update_metrics
    from naba.models.records import read_records
    from naba.training.metrics import format_table
    from naba.training.tuning import tune_on_dev

    predictor = load_predictor(loading)
    records = read_records(args.data)
    if args.retune:
        if not any(r.labels is not None for r in records):
            raise UsageError("--retune needs labelled articles in --data")
        tune_on_dev(predictor, records)
        predictor.config.tuned_on = ", ".join(args.data)
    scored = evaluate.score_records(predictor, records, args.summary_sentences)
    metrics = evaluate.compute_metrics(predictor, records, scored, args.summary_sentences)
    metrics["data"] = ", ".join(args.data)
    metrics["model"] = {
        "name": predictor.ref.name,
        "version": predictor.ref.version,
        "path": str(loading.model),
        "backend": predictor.backend,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(metrics, ensure_ascii=False, indent=2), "utf-8")
    logger.info("wrote %s", args.output)
    if args.update_card:
        update_metrics(loading.model, metrics, predictor.config if args.retune else None)
    if args.report:
        from naba.training.report import write_report  # matplotlib is only imported for a report

        write_report(args.report, predictor, records, scored, metrics)
        logger.info("wrote the report to %s", args.report)
    print(format_table(metrics, metrics.get("rouge")))  # noqa: T201 - the table is this command's output


EVALUATE = Command(
    "evaluate",
    (LoadingArguments, EvaluateArguments),
    run,
    description=evaluate.__doc__,
    configure=offer_torch_and_onnx,
)
