"""Batch benchmark: `naba predict` against a plain per-article loop, same model, same articles, same run.

For each model (`--model`, default `base` then `default`; see `bench/common.py`) it loads one `Predictor` and
times, `--repeats` times in alternating order:

- the baseline: `predictor.analyze([article])` for one article after another (what a script that calls the
  predictor in a loop does);
- `naba predict`: `naba.batch.run_batch` over the same articles, written to a JSONL file in a temporary
  directory and read back from one, with the batch size `naba predict` uses (`NABA_BATCH_SIZE`). This includes
  reading, validating, writing and fsyncing the JSONL, but not process start-up or model loading.

Reading the table: `seconds` is the median over repeats; `articles/s` is articles over that; `x baseline` is
the baseline's seconds over the row's (above 1: faster than the loop). Machines are noisy; compare ratios,
not absolute numbers, across machines. The line above the table says how long the articles are in tokens and
encoder windows, since that is what the time depends on.

    python bench/batch.py                              # base and default models, 64 articles, 3 repeats
    python bench/batch.py --model base --articles 16 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    add_model_arguments,
    ensure_export,
    length_stats,
    machine_line,
    markdown_table,
    max_length,
    model_size,
    resolve_model,
    sample_articles,
)
from models.results import Article  # noqa: E402
from naba.batch import run_batch  # noqa: E402

COLUMNS = ["run", "model", "params / size", "backend", "max_length", "articles", "seconds", "articles/s",
           "x baseline"]  # fmt: skip


@dataclass(frozen=True)
class BatchRow:
    run: str
    seconds: float  # median over repeats
    articles: int


def time_batch(
    predictor: Any, articles: Sequence[Article], repeats: int = 3, batch_size: int = 16
) -> list[BatchRow]:
    """Median seconds of the per-article loop (baseline, first row) and of `run_batch` over `articles`.

    Repeats alternate which of the two goes first, so that a machine getting slower or faster during the run
    does not favour one. The predictor is warmed up first.
    """
    predictor.warm_up()
    loop_times, batch_times = [], []
    with tempfile.TemporaryDirectory(prefix="naba-bench-") as tmp:
        source = Path(tmp) / "articles.jsonl"
        rows = [{"id": a.id or f"a{i}", "text": a.text, **({"title": a.title} if a.title else {})}
                for i, a in enumerate(articles)]  # fmt: skip
        source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")

        def per_article() -> None:
            start = time.perf_counter()
            for article in articles:
                predictor.analyze([article])
            loop_times.append(time.perf_counter() - start)

        def batched(repeat: int) -> None:
            output = Path(tmp) / f"results-{repeat}.jsonl"
            start = time.perf_counter()
            report = run_batch(predictor, source, output, batch_size=batch_size, progress=False)
            batch_times.append(time.perf_counter() - start)
            if report.written != len(articles):
                raise RuntimeError(
                    f"naba predict wrote {report.written} of {len(articles)} articles: {report}"
                )

        for repeat in range(repeats):
            if repeat % 2 == 0:
                per_article()
                batched(repeat)
            else:
                batched(repeat)
                per_article()
    return [
        BatchRow("per-article loop (baseline)", statistics.median(loop_times), len(articles)),
        BatchRow(f"naba predict (batch {batch_size})", statistics.median(batch_times), len(articles)),
    ]


def batch_table(rows: Sequence[BatchRow], model: str, size: str, backend: str, max_len: int) -> str:
    """The markdown table of `time_batch`'s rows; the first row is the baseline."""
    base = rows[0].seconds
    cells = [
        [r.run, model, size, backend, max_len, r.articles, f"{r.seconds:.2f}", f"{r.articles / r.seconds:.2f}",
         f"{base / r.seconds:.2f}"]
        for r in rows
    ]  # fmt: skip
    return markdown_table(COLUMNS, cells)


def build_parser() -> argparse.ArgumentParser:
    from service.config import get_settings

    parser = argparse.ArgumentParser(
        prog="bench/batch.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.add_argument("--articles", type=int, default=64, help="Articles per run.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each; the median is reported.")
    parser.add_argument("--batch-size", type=int, default=get_settings().batch_size, help="naba predict's.")
    return parser


def main(argv: list[str] | None = None) -> int:
    import torch

    from models.predictor import Predictor

    args = build_parser().parse_args(argv)
    if args.quantize and args.backend != "onnx":
        raise SystemExit("--quantize int8 needs --backend onnx")
    if args.repeats < 1 or args.articles < 1:
        raise SystemExit("--repeats and --articles must be at least 1")
    torch.set_num_threads(args.threads)
    articles, source = sample_articles(args.articles)
    reports = [f"## bench/batch: {source}, median of {args.repeats}; {machine_line(args.threads)}", ""]
    for name in args.model or ["base", "default"]:
        model = resolve_model(name)
        if model.path is None:
            reports += [f"### {model.name}", "", f"skipped: {model.note}", ""]
            continue
        ensure_export(model, args.backend, args.quantize)
        predictor = Predictor.from_dir(model.path, args.device, backend=args.backend, quantize=args.quantize)
        max_len = max_length(model.path)
        print(
            f"{model.name}: timing {len(articles)} articles on {predictor.device} ({predictor.backend}) ..."
        )
        rows = time_batch(predictor, articles, args.repeats, args.batch_size)
        size = model_size(model.path, args.backend, args.quantize)
        reports += [
            f"### {model.name}",
            "",
            f"device {predictor.device}; {length_stats(predictor, articles).line(max_len)}",
            "",
            batch_table(rows, model.name, size, predictor.backend, max_len),
            "",
        ]
    print("\n" + "\n".join(reports))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted")
