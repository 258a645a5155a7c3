"""Thread benchmark: one forward pass run from the main thread against the same pass from a worker thread.

The service runs the model on its own inference thread (`service/engine.py`), never on the main thread. On the
2-core machines this project is built on, a torch forward pass from such a thread measured clearly slower than
the same pass from the main thread, while ONNX Runtime (its own thread pool) did not. This prints, per backend,
the median seconds of `predictor.score([encoded])` over real articles, on the main thread and on a fresh
thread, `--repeats` rounds with the order alternating, and the ratio (above 1: the worker thread is slower).

What it points at (default model, torch): 1.35 as is, 0.93 with `--threads 1`, 2.05 with
`OMP_WAIT_POLICY=ACTIVE` in the environment: OpenMP team threads that keep spinning after a parallel region
compete with the worker's team for the two cores. A fix has to come from how the teams wait, not from Naba.

    python bench/threads.py                              # the served model, torch and onnx-int8
    python bench/threads.py --model base --backend torch --articles 16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

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

COLUMNS = ["model", "backend", "main thread ms", "worker thread ms", "worker / main"]


def pass_times(predictor: Any, encoded: list[Any]) -> float:
    """Median seconds of one forward pass per article."""
    samples = []
    for item in encoded:
        start = time.perf_counter()
        predictor.score([item])
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def on_a_thread(predictor: Any, encoded: list[Any]) -> float:
    """`pass_times` run from a fresh thread, as the service's inference worker runs it."""
    result: list[float] = []
    worker = threading.Thread(
        target=lambda: result.append(pass_times(predictor, encoded)), name="bench-worker"
    )
    worker.start()
    worker.join()
    return result[0]


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(
        prog="bench/threads.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.add_argument("--articles", type=int, default=64, help="Articles timed, one pass each.")
    parser.add_argument("--repeats", type=int, default=3, help="Alternating rounds; the median is reported.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    articles, source = sample_articles(args.articles)
    rows = []
    for name in args.model or ["default"]:
        model = resolve_model(name)
        if model.path is None:
            print(f"{model.name}: skipped: {model.note}")
            continue
        backends = chosen_backends(args)
        model = with_exports(model, backends)
        for backend in backends:
            predictor = load_predictor(model.path, args.device, backend)
            predictor.warm_up()
            encoded = [predictor.encode(article) for article in articles]
            main_s, worker_s = [], []
            for repeat in range(args.repeats):  # alternate which goes first
                if repeat % 2:
                    worker_s.append(on_a_thread(predictor, encoded))
                main_s.append(pass_times(predictor, encoded))
                if not repeat % 2:
                    worker_s.append(on_a_thread(predictor, encoded))
            m, w = statistics.median(main_s), statistics.median(worker_s)
            rows.append([model.name, backend, f"{m * 1e3:.1f}", f"{w * 1e3:.1f}", f"{w / m:.2f}"])
    print(f"\n## bench/threads: {source}, median of {args.repeats}; {machine_line(args.threads)}\n")
    print(markdown_table(COLUMNS, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
