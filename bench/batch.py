"""Batch benchmark: `naba predict` against plain per-article loops, same weights, same articles, same run.

For each model (`--model`, default `base` then `default`; see `bench/common.py`) it times, `--repeats` times,
in an order that rotates each repeat:

- **the baseline, the usual way**: a `transformers` text-classification pipeline over the artifact's encoder
  and label head (`bench/pipeline_server.build_pipeline`), called on one article after another, torch fp32,
  reading the first `max_length` tokens of each (what a script that loads the weights with transformers and
  loops over an archive does; `bench/pipeline_server.py` says what is and is not the same as Naba);
- for each Naba backend (`--backend`, default torch, torch-bf16 where the CPU has bf16 instructions, and
  onnx-int8 on CPU; torch on GPU):
  - `Predictor.analyze([article])` for one article after another (Naba's own code, no batching);
  - `naba predict`: `naba.batch.run_batch` over the same articles, written to a JSONL file and read back,
    with the batch size `naba predict` uses (`NABA_BATCH_SIZE`). This includes reading, validating, writing
    and fsyncing the JSONL, but not process start-up or model loading.

Reading the table: `seconds` is the median over repeats; `articles/s` is articles over that; `x pipeline` is
the baseline's seconds over the row's (above 1: faster than the usual way); `x own loop` compares `naba
predict` with the same backend's one-at-a-time loop (what batching alone buys). `tokens read/article` is
what each row runs through the encoder: the pipeline stops at `max_length`, Naba reads every window of a long
article (with their overlap), so for long articles Naba does more model work and its ratios are conservative.
Machines are noisy; compare ratios, not absolute numbers, across machines.

    python bench/batch.py                              # base and default models, 64 articles, 3 repeats
    python bench/batch.py --model base --articles 16 --repeats 1 --backend onnx-int8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    BACKENDS,
    add_model_arguments,
    chosen_backends,
    length_stats,
    load_predictor,
    machine_line,
    markdown_table,
    max_length,
    model_size,
    resolve_model,
    sample_articles,
    with_exports,
)
from naba.batch import run_batch  # noqa: E402
from naba.models.results import Article  # noqa: E402

COLUMNS = ["run", "backend", "tokens read/article", "articles", "seconds", "articles/s", "x pipeline",
           "x own loop"]  # fmt: skip
BASELINE = "transformers pipeline, one article at a time (baseline)"


@dataclass(frozen=True)
class BatchRow:
    run: str
    backend: str
    seconds: float  # median over repeats
    articles: int
    tokens: float  # encoder tokens read per article, padding excluded


def time_batch(
    baseline: Callable[[Article], Any],
    predictors: dict[str, Any],
    articles: Sequence[Article],
    repeats: int = 3,
    batch_size: int = 16,
    engines: dict[str, Any] | None = None,
) -> list[BatchRow]:
    """Median seconds of the baseline loop (first row) and, per backend, of the predictor's own loop and of
    `run_batch`, over `articles`.

    `baseline` analyses one article (the pipeline); `predictors` maps backend names to loaded predictors;
    `engines` maps row names to other analyzers (`naba.ray_engine.RayAnalyzer`), timed only through
    `run_batch`, with every article in one call for them to share out.
    The order of the runs rotates each repeat, so that a machine getting slower or faster during the run
    favours none. Everything is warmed up first.
    """
    runs: dict[tuple[str, str], Callable[[int], None]] = {}
    with tempfile.TemporaryDirectory(prefix="naba-bench-") as tmp:
        source = Path(tmp) / "articles.jsonl"
        rows = [{"id": a.id or f"a{i}", "text": a.text, **({"title": a.title} if a.title else {})}
                for i, a in enumerate(articles)]  # fmt: skip
        source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")

        def loop(analyse: Callable[[Article], Any]) -> Callable[[int], None]:
            def run(_: int) -> None:
                for article in articles:
                    analyse(article)

            return run

        def batched(predictor: Any, name: str, size: int = batch_size) -> Callable[[int], None]:
            def run(repeat: int) -> None:
                output = Path(tmp) / f"results-{name}-{repeat}.jsonl"
                report = run_batch(predictor, source, output, batch_size=size, progress=False)
                if report.written != len(articles):
                    raise RuntimeError(f"naba predict wrote {report.written} of {len(articles)}: {report}")

            return run

        baseline(articles[0])
        runs[(BASELINE, "torch")] = loop(baseline)
        for name, predictor in predictors.items():
            predictor.warm_up()
            runs[("naba Predictor, one article at a time", name)] = loop(
                lambda a, p=predictor: p.analyze([a])
            )
            runs[(f"naba predict (batch {batch_size})", name)] = batched(predictor, name)
        for name, engine in (engines or {}).items():
            engine.analyze(articles[:2])  # every actor loaded before timing
            runs[(name, engine.backend)] = batched(engine, name.replace(" ", "-"), len(articles))

        times: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
        keys = list(runs)
        for repeat in range(repeats):
            shift = repeat % len(keys)
            for key in keys[shift:] + keys[:shift]:
                start = time.perf_counter()
                runs[key](repeat)
                times[key].append(time.perf_counter() - start)

    some = next(iter(predictors.values()))
    max_len = some.config.window.max_length
    stats = length_stats(some, articles)
    naba_tokens = statistics.fmean(stats.read)
    pipeline_tokens = statistics.fmean(min(t + 2, max_len) for t in stats.tokens)
    return [
        BatchRow(run, backend, statistics.median(times[(run, backend)]), len(articles),
                 pipeline_tokens if run == BASELINE else naba_tokens)
        for run, backend in keys
    ]  # fmt: skip


def batch_table(rows: Sequence[BatchRow]) -> str:
    """The markdown table of `time_batch`'s rows; the first row is the baseline."""
    base = rows[0].seconds
    own_loop = {r.backend: r.seconds for r in rows[1:] if "one article at a time" in r.run}
    cells = []
    for r in rows:
        loop = own_loop.get(r.backend) if r.run.startswith("naba predict") else None
        cells.append([r.run, r.backend, f"{r.tokens:.0f}", r.articles, f"{r.seconds:.2f}",
                      f"{r.articles / r.seconds:.2f}", f"{base / r.seconds:.2f}",
                      f"{loop / r.seconds:.2f}" if loop else ""])  # fmt: skip
    return markdown_table(COLUMNS, cells)


def ray_row(actors: int) -> str:
    return f"naba predict --engine ray ({actors} actor{'s' if actors > 1 else ''})"


def ray_engines(model_path: Path, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """A `RayAnalyzer` per `--ray-actors` count, on the fastest local backend, one torch thread per actor."""
    if not args.ray_actors:
        return {}
    import ray

    from naba.ray_engine import RayAnalyzer

    if not ray.is_initialized():
        # Logical CPUs for every actor of every row at once; the rows are timed one after another.
        ray.init(num_cpus=sum(args.ray_actors), include_dashboard=False, log_to_driver=False)
    kind, quantize, dtype = BACKENDS[backend]
    return {
        ray_row(n): RayAnalyzer(
            model_path, actors=n, batch_size=args.batch_size, device=args.device, backend=kind,  # type: ignore[arg-type]
            quantize=quantize, dtype=dtype,  # type: ignore[arg-type]
        )
        for n in args.ray_actors
    }  # fmt: skip


def projection(rows: Sequence[BatchRow], actor_counts: Sequence[int]) -> list[str]:
    """Hours for 1M and 10M articles on N actors, from the best measured articles/s per actor, assuming each
    added actor has its own CPUs and adds that rate (reading and writing on the driver stay far cheaper)."""
    rates = [
        r.articles / r.seconds / n
        for r in rows
        for n in actor_counts
        if r.run.endswith(f"({n} actor{'s' if n > 1 else ''})")
    ]
    if not rates:
        return []
    per_actor = max(rates)
    lines = [f"Projection from {per_actor:.1f} articles/s per actor (linear in actors; one CPU each):", ""]
    lines.append(markdown_table(["actors", "1M articles (h)", "10M articles (h)"],
                                [[n, f"{1e6 / (n * per_actor) / 3600:.1f}", f"{1e7 / (n * per_actor) / 3600:.1f}"]
                                 for n in (1, 2, 16, 64)]))  # fmt: skip
    return [*lines, ""]


def build_parser() -> argparse.ArgumentParser:
    from naba.settings import get_settings

    parser = argparse.ArgumentParser(
        prog="bench/batch.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.add_argument("--articles", type=int, default=64, help="Articles per run.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each; the median is reported.")
    parser.add_argument("--batch-size", type=int, default=get_settings().batch_size, help="naba predict's.")
    parser.add_argument(
        "--ray-actors",
        type=int,
        nargs="*",
        default=[],
        help="Also time `naba predict --engine ray` with each of these actor counts (local Ray, 1 CPU each), "
        "and project 1M and 10M articles from the measured rate.",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    import torch

    from bench.pipeline_server import build_pipeline
    from naba.models.predictor import resolve_device

    args = build_parser().parse_args(argv)
    if args.repeats < 1 or args.articles < 1:
        raise SystemExit("--repeats and --articles must be at least 1")
    torch.set_num_threads(args.threads)
    backends = chosen_backends(args)
    articles, source = sample_articles(args.articles)
    reports = [f"## bench/batch: {source}, median of {args.repeats}; {machine_line(args.threads)}", ""]
    for name in args.model or ["base", "default"]:
        model = resolve_model(name)
        if model.path is None:
            reports += [f"### {model.name}", "", f"skipped: {model.note}", ""]
            continue
        model = with_exports(model, backends)
        predictors = {backend: load_predictor(model.path, args.device, backend) for backend in backends}
        max_len = max_length(model.path)
        classify = build_pipeline(model.path, resolve_device(args.device).type)

        def pipeline_one(article: Article, classify: Any = classify, max_len: int = max_len) -> Any:
            text = f"{article.title}\n{article.text}" if article.title else article.text
            return classify([text], truncation=True, max_length=max_len)

        device = next(iter(predictors.values())).device
        print(
            f"{model.name}: timing {len(articles)} articles on {device}, backends {', '.join(backends)} ..."
        )
        engines = ray_engines(model.path, backends[-1], args)
        try:
            rows = time_batch(pipeline_one, predictors, articles, args.repeats, args.batch_size, engines)
        finally:
            for engine in engines.values():
                engine.close()
        sizes = "; ".join(f"{b} {model_size(model.path, b)}" for b in backends)
        stats = length_stats(next(iter(predictors.values())), articles)
        reports += [
            f"### {model.name}",
            "",
            f"params / weights file: {sizes}; max_length {max_len}; device {device}",
            stats.line(max_len),
            "",
            batch_table(rows),
            "",
            *projection(rows, args.ray_actors),
        ]
    print("\n" + "\n".join(reports))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted")
