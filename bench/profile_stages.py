"""(Not `profile.py`: run as a script, that name would shadow the standard library module cProfile imports.)

Where `Predictor.analyze` spends its time, by stage, for one article and for a batch: the encoder's forward
pass against everything around it (tokenising, splitting, windows, the guide's rules, the lexical head, result
building, JSON).

Each stage is timed on its own over the same articles, median of `--repeats` runs; the encoder's forward
pass is the baseline, measured in the same run, and every other stage is given as a share of it (the speed
issue's target: everything around the encoder at most 25% of it). `--cprofile N` also prints the N functions
with the most own time over the whole batch.

    python bench/profile_stages.py                          # the shipped model, int8 ONNX where exported, else torch
    python bench/profile_stages.py --backend torch --batch 256 --cprofile 15
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.common import (  # noqa: E402
    add_model_arguments,
    chosen_backends,
    load_predictor,
    machine_line,
    markdown_table,
    resolve_model,
    sample_articles,
    with_exports,
)
from naba.models.results import Article  # noqa: E402

COLUMNS = ["stage", "1 article (ms)", "batch (ms)", "batch: ms per article", "batch: share of encoder"]


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def stage_times(predictor: Any, articles: Sequence[Article], repeats: int) -> dict[str, float]:
    """Seconds per stage over `articles`, each stage alone on the previous stage's output."""
    windows = [predictor.windows_of(a) for a in articles]
    encoded = [predictor.with_lexical(a, w) for a, w in zip(articles, windows, strict=True)]
    scores = predictor.score(encoded)
    analyses = [predictor.result(e, s) for e, s in zip(encoded, scores, strict=True)]
    times = {
        "tokenise, split, windows, rules": lambda: [predictor.windows_of(a) for a in articles],
        "lexical head (features and logits)": (
            (lambda: [predictor.with_lexical(a, w) for a, w in zip(articles, windows, strict=True)])
            if predictor.lexical is not None
            else None
        ),
        "encoder and heads (score)": lambda: predictor.score(encoded),
        "results (evidence, summary)": lambda: [
            predictor.result(e, s) for e, s in zip(encoded, scores, strict=True)
        ],
        "JSON": lambda: [json.dumps(a.to_dict(), ensure_ascii=False) for a in analyses],
        "analyze, end to end": lambda: predictor.analyze(list(articles)),
    }
    return {name: median_seconds(work, repeats) for name, work in times.items() if work is not None}


def top_functions(predictor: Any, articles: Sequence[Article], n: int) -> str:
    profiler = cProfile.Profile()
    profiler.runcall(predictor.analyze, list(articles))
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(n)
    return out.getvalue()


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.add_argument("--batch", type=int, default=256, help="Articles in the batch.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs per stage; the median is reported.")
    parser.add_argument("--cprofile", type=int, default=0, help="Also print the N costliest functions.")
    args = parser.parse_args(argv)
    backend = chosen_backends(args)[-1]  # the fastest the device offers (int8 ONNX on CPU)
    model = with_exports(resolve_model((args.model or ["default"])[0]), [backend])
    if model.path is None:
        raise SystemExit(model.note)
    torch.set_num_threads(args.threads)
    predictor = load_predictor(model.path, args.device, backend)
    articles, source = sample_articles(args.batch)
    predictor.analyze(articles[:8])  # warm-up
    one, batch = (
        stage_times(predictor, articles[:1], args.repeats),
        stage_times(predictor, articles, args.repeats),
    )
    encoder = batch["encoder and heads (score)"]
    rows = [
        [name, f"{one[name] * 1e3:.1f}", f"{seconds * 1e3:.0f}", f"{seconds * 1e3 / len(articles):.2f}",
         f"{seconds / encoder:.2f}x"]
        for name, seconds in batch.items()
    ]  # fmt: skip
    around = sum(
        s for name, s in batch.items() if name not in ("encoder and heads (score)", "analyze, end to end")
    )
    lines = [
        f"{model.name} ({backend}), {source}; {machine_line(args.threads)}",
        "",
        markdown_table(COLUMNS, rows),
        "",
        f"Everything around the encoder: {around / encoder:.2f}x the encoder's own time (target <= 0.25x); "
        f"end to end {len(articles) / batch['analyze, end to end']:.1f} articles/s.",
    ]
    if args.cprofile:
        lines += ["", top_functions(predictor, articles, args.cprofile)]
    report = "\n".join(lines)
    print(report)
    return report


if __name__ == "__main__":
    main()
