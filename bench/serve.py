"""Serving benchmark: the Naba service against a plain `transformers` pipeline server, same weights, same run.

For each model (`--model`, default `base` then `default`; see `bench/common.py`) it starts, one after the other
so that they never share the CPU:

1. `naba serve` in a subprocess on a free 127.0.0.1 port (`NABA_MODEL_DIR`, `NABA_BACKEND`, `NABA_QUANTIZE`,
   `NABA_DTYPE`, `NABA_DEVICE`, `NABA_TORCH_THREADS` set), waiting for `/readyz`, once per Naba backend
   (`--backend`, default torch, torch-bf16 where the CPU has bf16 instructions, and onnx-int8 on CPU; torch on
   GPU);
2. the baseline, `bench/pipeline_server.py`: a FastAPI app that runs a text-classification pipeline once per
   request on the same encoder and label-head weights (its docstring lists what is and is not the same).

Each server is driven over loopback by closed-loop workers (an async httpx client; each worker sends its next
article as soon as the previous answer comes) at concurrency 1, 8 and 32 for `--seconds` each, POSTing real
articles in the same order to both. Then, in this process, it times one forward pass
(`predictor.score([predictor.encode(article)])`, median of `--forward-reps`) of each article sent at
concurrency 1.

Reading the table: `articles/s` counts answered articles over the wall time of the level; latencies are per
request, over successful ones; `x baseline` is Naba's articles/s over the baseline's at the same concurrency
(above 1: Naba is faster). Machines are noisy; compare ratios, not absolute numbers, across machines. The
line under the table compares Naba's p50 latency at concurrency 1 with the single forward pass of the same
articles: what HTTP, validation, tokenisation, the queue and the result cost on top of the model (target
<= 1.2). Both servers get the same torch threads (`--threads`, default: every CPU this process may use); the
load generator runs on the same machine, equally for both.

    python bench/serve.py                       # base and default models, 15 s per level
    python bench/serve.py --model base --seconds 3 --concurrency 1 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench.common import (  # noqa: E402
    BACKENDS,
    ModelChoice,
    add_model_arguments,
    chosen_backends,
    length_stats,
    load_predictor,
    machine_line,
    markdown_table,
    max_length,
    model_size,
    percentile,
    resolve_model,
    sample_articles,
    with_exports,
)
from naba.models.predictor import resolve_device  # noqa: E402
from naba.models.results import Article  # noqa: E402

COLUMNS = ["server", "backend", "concurrency", "requests", "errors", "articles/s", "p50 ms", "p95 ms",
           "p99 ms", "x baseline"]  # fmt: skip


@dataclass
class LoadResult:
    """What one server answered at one concurrency."""

    concurrency: int
    seconds: float  # from the first request to the last answer
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    sent: list[int] = field(default_factory=list)  # article index of each successful request
    errors: int = 0
    first_error: str | None = None

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds > 0 else 0.0

    def ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


async def drive(
    url: str,
    payloads: Sequence[dict[str, Any]],
    concurrency: int,
    seconds: float,
    *,
    timeout: float = 120.0,
    max_requests: int | None = None,
) -> LoadResult:
    """POST `payloads` round-robin to `url` from `concurrency` closed-loop workers for `seconds`.

    Workers start no request after `seconds` (or after `max_requests` in all); requests in flight are waited
    for, up to `timeout` each. A non-200 answer or a transport error counts as an error.
    """
    result = LoadResult(concurrency, 0.0)
    counter = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # trust_env=False: no proxy from the environment may carry loopback traffic anywhere else.
    async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                n = next(counter)
                if max_requests is not None and n >= max_requests:
                    return
                index = n % len(payloads)
                sent = time.perf_counter()
                try:
                    response = await client.post(url, json=payloads[index])
                    error = (
                        None
                        if response.status_code == 200
                        else f"HTTP {response.status_code}: {response.text[:200]}"
                    )
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                if error is None:
                    result.latencies.append(time.perf_counter() - sent)
                    result.sent.append(index)
                else:
                    result.errors += 1
                    result.first_error = result.first_error or error

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - start
    return result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(name: str, command: list[str], env: dict[str, str], port: int, startup_s: float) -> Iterator[str]:
    """Run `command` (a server on 127.0.0.1:`port`) until the block ends, however it ends; yields its URL.

    Raises:
        RuntimeError: the server exited or did not answer `/readyz` within `startup_s`.
    """
    base = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile("w", prefix="naba-bench-", suffix=".log") as log:
        proc = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait_ready(proc, base, startup_s, Path(log.name), name)
            yield base
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], base: str, startup_s: float, log: Path, name: str) -> None:
    deadline = time.monotonic() + startup_s
    with httpx.Client(timeout=5, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{base}/readyz").status_code == 200:
                    return
            time.sleep(0.5)
    state = (
        f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready after {startup_s:g} s"
    )
    tail = log.read_text("utf-8", errors="replace")[-3000:]
    raise RuntimeError(f"{name} {state}; its output ends with:\n{tail}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it has not gone within 10 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def server_env(args: argparse.Namespace, model_dir: Path, backend: str = "torch") -> dict[str, str]:
    """The environment both servers run in: same threads and device; Naba's settings for the Naba server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NABA_") or k == "NABA_DATA_DIR"}
    threads = str(args.threads)
    kind, quantize, dtype = BACKENDS[backend]
    env |= {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1", "NABA_MODEL_DIR": str(model_dir), "NABA_TORCH_THREADS": threads,
            "NABA_DEVICE": args.device, "NABA_BACKEND": kind, "NABA_DTYPE": dtype,
            "NABA_LOG_LEVEL": "warning"}  # fmt: skip
    if quantize:
        env["NABA_QUANTIZE"] = quantize
    return env


def run_levels(
    name: str, url: str, payloads: list[dict[str, Any]], args: argparse.Namespace
) -> list[LoadResult]:
    """Warm a server up with a few requests, then drive it at each concurrency."""
    asyncio.run(drive(url, payloads, 1, args.seconds, max_requests=min(3, len(payloads))))
    results = []
    for c in args.concurrency:
        result = asyncio.run(drive(url, payloads, c, args.seconds))
        print(
            f"  {name} c={c}: {result.rate:.2f} articles/s, p50 {result.ms(50):.0f} ms, {result.errors} errors"
        )
        if result.first_error:
            print(f"    first error: {result.first_error}")
        results.append(result)
    return results


def serves(url: str, backend: str) -> tuple[bool, str]:
    """Whether the Naba server runs `backend` (a `BACKENDS` name), as its `/v1/model` reports it, and what it
    reports (`backend`, with the `dtype` where `backend` names one)."""
    with httpx.Client(timeout=10, trust_env=False) as client:
        info = client.get(f"{url}/v1/model").json()
    kind, quantize, dtype = BACKENDS[backend]
    named = dtype != "auto"
    expected = (f"{kind}-{quantize}" if quantize else kind) + (f" ({dtype})" if named else "")
    served = (info.get("backend") or "torch") + (f" ({info.get('dtype')})" if named else "")
    return served == expected, served


def forward_times(
    predictor: Any, articles: Sequence[Article], indices: set[int], reps: int
) -> dict[int, float]:
    """Median seconds of one forward pass (`score([encode(article)])`, encoding excluded) per article index."""
    times = {}
    for i in sorted(indices):
        encoded = predictor.encode(articles[i])
        predictor.score([encoded])  # warm this shape up
        samples = []
        for _ in range(reps):
            start = time.perf_counter()
            predictor.score([encoded])
            samples.append(time.perf_counter() - start)
        times[i] = statistics.median(samples)
    return times


def serve_naba(
    model_dir: Path, backend: str, payloads: list[dict[str, Any]], args: argparse.Namespace
) -> list[LoadResult]:
    """Start `naba serve` with `backend`, check it runs that backend, drive it, stop it."""
    port = free_port()
    naba_cmd = [sys.executable, "-m", "naba", "serve", "--model", str(model_dir), "--port", str(port)]
    print(f"{model_dir}: naba serve ({backend}) on 127.0.0.1:{port} ...")
    with server(
        "naba serve", naba_cmd, server_env(args, model_dir, backend), port, args.startup_timeout
    ) as url:
        running, served = serves(url, backend)
        if not running:
            raise SystemExit(
                f"asked naba serve for backend {backend!r} but /v1/model reports {served!r}: does the service "
                "read NABA_BACKEND and NABA_DTYPE and report them?"
            )
        return run_levels(f"naba {backend}", f"{url}/v1/analyze", payloads, args)


def serve_baseline(
    model_dir: Path, payloads: list[dict[str, Any]], args: argparse.Namespace
) -> list[LoadResult]:
    """Start the pipeline baseline server, drive it, stop it."""
    port = free_port()
    base_cmd = [sys.executable, str(REPO / "bench" / "pipeline_server.py"), "--model", str(model_dir),
                "--port", str(port), "--threads", str(args.threads), "--device", resolve_device(args.device).type,
                *(["--serial"] if args.baseline_serial else [])]  # fmt: skip
    print(f"{model_dir}: pipeline baseline on 127.0.0.1:{port} ...")
    with server(
        "pipeline baseline", base_cmd, server_env(args, model_dir), port, args.startup_timeout
    ) as url:
        return run_levels("baseline", f"{url}/v1/analyze", payloads, args)


def forward_line(predictor: Any, articles: list[Article], naba: list[LoadResult], reps: int) -> str:
    """Naba's p50 latency at concurrency 1 over the p50 single forward pass of the articles it answered."""
    c1 = next((r for r in naba if r.concurrency == 1), None)
    if c1 is None or not c1.sent:
        return "no answers at concurrency 1: the single forward pass was not compared"
    fwd = forward_times(predictor, articles, set(c1.sent), reps)
    fwd_p50 = statistics.median(fwd[i] for i in c1.sent) * 1000  # weighted as the requests were
    return (
        f"Naba c=1 p50 {c1.ms(50):.0f} ms / single forward pass of the same articles p50 {fwd_p50:.0f} ms "
        f"= **{c1.ms(50) / fwd_p50:.2f}** (target <= 1.2; {len(fwd)} articles, median of {reps} each)"
    )


def bench_model(model: ModelChoice, articles: list[Article], args: argparse.Namespace) -> str:
    """Serve `model` with each Naba backend and the usual way, one server at a time, drive each, time single
    forward passes; return the report as markdown."""
    import torch

    if model.path is None:
        raise ValueError(f"{model.name} has no artifact: {model.note}")
    backends = chosen_backends(args)
    model = with_exports(model, backends)
    payloads = [{"text": a.text, **({"title": a.title} if a.title else {})} for a in articles]
    naba = {backend: serve_naba(model.path, backend, payloads, args) for backend in backends}
    baseline = serve_baseline(model.path, payloads, args)

    torch.set_num_threads(args.threads)  # the servers are gone: this process has the CPUs to itself
    lines, rows = [], []
    for backend, results in naba.items():
        predictor = load_predictor(model.path, args.device, backend)
        lines.append(f"{backend}: {forward_line(predictor, articles, results, args.forward_reps)}")
    for level, b in enumerate(baseline):
        for backend, results in naba.items():
            n = results[level]
            rows.append(_row("naba", backend, n, f"{n.rate / b.rate:.2f}" if b.rate > 0 else "n/a"))
        rows.append(_row("pipeline (baseline)", "torch", b, "1.00"))
    if "torch" in naba and len(naba) > 1:
        for backend in [b for b in naba if b != "torch"]:
            ratios = ", ".join(
                f"c={fast.concurrency} {fast.rate / slow.rate:.2f}"
                for fast, slow in zip(naba[backend], naba["torch"], strict=True)
                if slow.rate > 0
            )
            lines.append(f"naba {backend} over naba torch, articles/s: {ratios}")
    max_len = max_length(model.path)
    stats = length_stats(predictor, articles)
    mode = "one request at a time" if args.baseline_serial else "one request per FastAPI thread"
    sizes = "; ".join(f"{b} {model_size(model.path, b)}" for b in backends)
    return "\n".join([
        f"### {model.name}",
        "",
        f"params / weights file: {sizes}; max_length {max_len}, device {predictor.device}, "
        f"torch threads per server: {args.threads}, {args.seconds:g} s per level",
        stats.line(max_len),
        f"baseline: transformers pipeline, {mode}, truncated to the first {max_len} tokens: it reads "
        f"{stats.truncated_share(max_len):.0%} of the article tokens that Naba reads",
        "",
        markdown_table(COLUMNS, rows),
        "",
        *lines,
    ])  # fmt: skip


def _row(name: str, backend: str, r: LoadResult, ratio: str) -> list[object]:
    return [name, backend, r.concurrency, len(r.latencies) + r.errors, r.errors, f"{r.rate:.2f}",
            f"{r.ms(50):.0f}", f"{r.ms(95):.0f}", f"{r.ms(99):.0f}", ratio]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/serve.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.add_argument("--seconds", type=float, default=15.0, help="Load time per concurrency level.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="Levels to drive.")
    parser.add_argument("--articles", type=int, default=64, help="Distinct articles sent, round-robin.")
    parser.add_argument(
        "--baseline-serial",
        action="store_true",
        help="Let the baseline run one request at a time (a lock) instead of one per FastAPI thread.",
    )
    parser.add_argument(
        "--forward-reps", type=int, default=3, help="Timings per article of the forward pass."
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=300.0, help="Seconds a server may take to load."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # so that `finally` stops the servers
    articles, source = sample_articles(args.articles)
    reports = [f"## bench/serve: {source}; {machine_line(args.threads)}", ""]
    for name in args.model or ["base", "default"]:
        model = resolve_model(name)
        if model.path is None:
            reports += [f"### {model.name}", "", f"skipped: {model.note}", ""]
            continue
        reports += [bench_model(model, articles, args), ""]
    print("\n" + "\n".join(reports))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted")
