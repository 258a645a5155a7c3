"""Memory of `naba predict` over a large archive: what reading the input and resuming cost per article.

`naba predict` keeps every id it reads (to report a repeated one) and, on a rerun, every id already in the
output (to skip it), so its memory grows with the archive. This prints the peak RSS of a child process that
reads N synthetic articles with 17-character ids (`fresh`), and of one that resumes over an output already
holding all N (`resume`), against the same with one article, measured in the same run (the baseline), and the
bytes per article. No model is loaded: only the bookkeeping is measured (`run_batch` never calls the model,
as every article is already done).

    python bench/batch_memory.py                    # 1,000,000 articles
    python bench/batch_memory.py --articles 200000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import markdown_table  # noqa: E402

COLUMNS = ["run", "articles", "peak RSS (MiB)", "baseline, 1 article (MiB)", "bytes per article", "seconds"]


def write_archive(path: Path, n: int) -> None:
    """`n` articles with ids `article-000000001`...: 17 characters, as archive ids often are."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"article-{i:09d}", "text": "خبر"}, ensure_ascii=False) + "\n")


def write_done_output(path: Path, n: int) -> None:
    """An output that already holds a result line for each of the `n` articles (no manifest: resumed)."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"article-{i:09d}", "labels": [], "scores": {}, "model": {}}) + "\n")


class NeverCalled:
    """Stands in for the predictor: every article is already done, so analysing one is a bug."""

    def analyze(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the benchmark resumed over a complete output, yet an article was analysed")


def child(mode: str, n: int, workdir: Path) -> dict[str, Any]:
    """Run one measurement in this process: `fresh` reads the archive, `resume` reruns over a full output."""
    from naba.batch import run_batch
    from naba.models.records import iter_rows

    archive = workdir / f"in{n}.jsonl"
    write_archive(archive, n)
    if mode == "resume":
        output = workdir / f"out{n}.jsonl"
        write_done_output(output, n)
    start = time.perf_counter()
    if mode == "fresh":
        count = sum(1 for _ in iter_rows(archive, default_id_prefix="line-", articles_only=True))
    else:
        count = run_batch(NeverCalled(), archive, output, progress=False).skipped_done
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"mode": mode, "articles": count, "peak_bytes": peak, "seconds": seconds}


def measure(mode: str, n: int, workdir: Path) -> dict[str, Any]:
    """`child` in a fresh interpreter, so that each peak RSS is its own."""
    command = [sys.executable, __file__, "--child", mode, "--articles", str(n), "--workdir", str(workdir)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(done.stdout.splitlines()[-1])


def rows(n: int, workdir: Path) -> list[list[object]]:
    table = []
    for mode in ("fresh", "resume"):
        base, big = measure(mode, 1, workdir), measure(mode, n, workdir)
        if big["articles"] != n:
            raise AssertionError(f"{mode}: {big['articles']} articles counted, expected {n}")
        per_article = (big["peak_bytes"] - base["peak_bytes"]) / max(n - 1, 1)
        table.append([
            mode,
            n,
            f"{big['peak_bytes'] / 2**20:.0f}",
            f"{base['peak_bytes'] / 2**20:.0f}",
            f"{per_article:.0f}",
            f"{big['seconds']:.1f}",
        ])  # fmt: skip
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=1_000_000, help="Articles in the synthetic archive.")
    parser.add_argument("--workdir", type=Path, default=None, help="Where the archive goes (default: temp).")
    parser.add_argument("--child", choices=("fresh", "resume"), help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> str:
    args = build_parser().parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.articles, args.workdir)))
        return ""
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        table = markdown_table(COLUMNS, rows(args.articles, Path(tmp)))
    print(table)
    return table


if __name__ == "__main__":
    main()
