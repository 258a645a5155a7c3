"""What both benchmarks share: the models they time, the articles they send, and how they print.

Models, by name on the command line (`--model`):

- `base`: a BERT-base-sized encoder (12 layers, 768 wide, 12 heads, 3072 intermediate, 512 positions) with
  random weights and a 30k WordPiece vocabulary trained on a few thousand real articles, wrapped as a Naba
  artifact (labels coordination_centre / joint_operation / attack, thresholds 0.5, windows of 512 tokens with
  128 overlap). Random weights tag nothing useful, but cost exactly what trained ones cost. It is built once
  and cached under `artifacts/bench/`.
- `default`: the served model (`NABA_MODEL_DIR`, else the shipped `models/default`), skipped with a note when
  absent. When an ONNX backend is asked for and it has no export, a copy under `artifacts/bench/` is exported.
- any other value: the path of a Naba artifact.

Articles are real: the labelled dev set and the BBC dev pairs under `NABA_DATA_DIR`, else the seed articles.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python bench/<script>.py`: make `bench` and the packages importable
    sys.path.insert(0, str(REPO))

from naba.models.artifacts import CHECKSUMS, WEIGHTS, read_config  # noqa: E402
from naba.models.errors import DataError  # noqa: E402
from naba.models.onnx_backend import FP32, INT8, ONNX_DIR, export_is_current, export_onnx  # noqa: E402
from naba.models.records import Record, iter_rows  # noqa: E402
from naba.models.results import Article  # noqa: E402
from naba.settings import get_settings  # noqa: E402

BENCH_DIR = REPO / "artifacts" / "bench"
BASE_NAME = "bert-base-random-v1"  # bump the suffix when the recipe below changes: the cache is by name
BASE_LABELS = ["coordination_centre", "joint_operation", "attack"]
BASE_VOCAB = 30_000
VOCAB_ARTICLES = 4_000  # articles the WordPiece vocabulary is trained on
SEEDS = REPO / "seeds" / "seeds.jsonl"


# Naba's encoder backends as the benchmarks name them: (NABA_BACKEND, NABA_QUANTIZE, NABA_DTYPE). `torch` is
# the default precision: fp32 on CPU, bf16 (fp16) on a GPU.
BACKENDS: dict[str, tuple[str, str | None, str]] = {
    "torch": ("torch", None, "auto"),
    "torch-bf16": ("torch", None, "bfloat16"),
    "onnx": ("onnx", None, "auto"),
    "onnx-int8": ("onnx", "int8", "auto"),
}


def chosen_backends(args: argparse.Namespace) -> list[str]:
    """`--backend`, or the default for the device: on CPU, ONNX Runtime's int8 fast path and, where the CPU has
    bf16 instructions, torch in bf16 join torch."""
    if args.backend:
        return list(dict.fromkeys(args.backend))
    from naba.models.predictor import cpu_has_native_bf16, resolve_device

    if resolve_device(args.device).type == "cuda":
        return ["torch"]
    return ["torch", *(["torch-bf16"] if cpu_has_native_bf16() else []), "onnx-int8"]


def load_predictor(path: Path, device: str, backend: str) -> Any:
    """A `naba.models.predictor.Predictor` over `path` running `backend` (a `BACKENDS` name)."""
    from naba.models.predictor import Predictor

    kind, quantize, dtype = BACKENDS[backend]
    return Predictor.from_dir(path, device, backend=kind, quantize=quantize, dtype=dtype)


@dataclass(frozen=True)
class ModelChoice:
    """A model to benchmark: its name in the tables and its artifact directory (None: skipped, see `note`)."""

    name: str
    path: Path | None
    note: str = ""
    owned: bool = False  # built by the benchmark under artifacts/bench: it may add an ONNX export to it


def data_dir() -> Path:
    """`NABA_DATA_DIR` (through the settings), resolved against the repository when relative and missing."""
    path = get_settings().data_dir
    if not path.is_absolute() and not path.exists():
        path = REPO / path
    return path


def _records(paths: Sequence[Path], limit: int | None = None) -> list[Record]:
    """Valid records from `paths`, in file order, at most `limit`; bad lines are skipped."""
    out: list[Record] = []
    for path in paths:
        if not path.is_file():
            continue
        for _, row in iter_rows(path, default_id_prefix=f"{path.stem}-"):
            if isinstance(row, Record):
                out.append(row)
                if limit is not None and len(out) >= limit:
                    return out
    return out


def sample_articles(n: int, seed: int = 0) -> tuple[list[Article], str]:
    """`n` real articles, shuffled with `seed`: the labelled dev set and the BBC dev pairs, else the seeds.

    When `n` is more than there are, the list repeats, with unique ids (`naba predict` skips repeated ids).

    Returns:
        The articles and a line saying where they came from.
    """
    root = data_dir()
    files = [root / "labelled" / "dev.jsonl", root / "summaries" / "bbc_dev.jsonl"]
    records = _records(files)
    source = ", ".join(str(p) for p in files if p.is_file())
    if not records:
        records, source = _records([SEEDS]), f"{SEEDS} (no data under {root})"
    if not records:
        raise DataError("no articles to benchmark with", str(SEEDS))
    random.Random(seed).shuffle(records)
    articles = []
    for i in range(n):
        r = records[i % len(records)]
        suffix = f"#{i // len(records)}" if i >= len(records) else ""
        articles.append(Article(text=r.text, title=r.title, id=f"{r.id}{suffix}"))
    return articles, f"{len(articles)} articles from {source}"


def build_base_artifact(output: Path | None = None) -> Path:
    """The BERT-base-sized random-weight artifact, built on the first call and cached (a few minutes)."""
    output = output or BENCH_DIR / BASE_NAME
    if (output / "naba_config.json").is_file():
        return output
    import torch
    from transformers import BertModel

    from naba.models.artifacts import NabaConfig, save_artifact
    from naba.models.encoding import WindowConfig
    from naba.models.errors import ArtifactError
    from naba.models.modeling import HeadConfig, NabaModel
    from naba.training.encoder import EncoderSize, bert_config, train_wordpiece

    root = data_dir()
    files = [root / "labelled" / "train.jsonl", root / "summaries" / "bbc_train.jsonl"]
    files += sorted((root / "corpus").glob("*.jsonl.gz"))
    texts = [r.text for r in _records(files, limit=VOCAB_ARTICLES)] or [r.text for r in _records([SEEDS])]
    print(f"building {output.name}: WordPiece on {len(texts)} articles, then random BERT-base weights ...")
    tokenizer = train_wordpiece(texts, BASE_VOCAB)
    tokenizer.model_max_length = 512
    config = bert_config(tokenizer, EncoderSize.bert_shaped(BASE_VOCAB, 768, 12, 12, 512))  # BERT-base
    torch.manual_seed(0)
    model = NabaModel(BertModel(config), HeadConfig(num_labels=len(BASE_LABELS))).eval()
    naba_config = NabaConfig(
        labels=list(BASE_LABELS),
        thresholds=[0.5] * len(BASE_LABELS),
        base_model="random BERT-base (benchmark only)",
        window=WindowConfig(max_length=512, overlap=128),
        name="naba-bench-base",
        version=BASE_NAME,
        description="**Benchmark model.** Random weights of BERT-base size: for timing only, its tags mean nothing.",
    )
    try:
        save_artifact(model, tokenizer, naba_config, output)
    except ArtifactError:  # another benchmark built it meanwhile (save_artifact renames into place)
        if not (output / "naba_config.json").is_file():
            raise
    return output


def resolve_model(name: str) -> ModelChoice:
    """`base`, `default` or a path, as described in the module docstring."""
    if name == "base":
        return ModelChoice("base", build_base_artifact(), owned=True)
    if name == "default":
        path = get_settings().model_dir
        if not (path / "naba_config.json").is_file():
            note = f"no model at {path} (set NABA_MODEL_DIR, or build one with `make starter`)"
            return ModelChoice("default", None, note=note)
        return ModelChoice(f"default ({path})", path.resolve())
    path = Path(name)
    if not (path / "naba_config.json").is_file():
        raise SystemExit(f"{path} is not a Naba artifact (no naba_config.json)")
    return ModelChoice(str(path), path.resolve())


def with_exports(model: ModelChoice, backends: Sequence[str]) -> ModelChoice:
    """`model`, with the ONNX exports that `backends` (`BACKENDS` names) need.

    A bench-built model gets them written into it. Any other model is never written to (`naba export`
    writes into the artifact, which is its owner's call): when it lacks an export, the benchmark copies it
    under `artifacts/bench/` once and exports the copy, which has the same weights.
    """
    onnx = [b for b in backends if BACKENDS[b][0] == "onnx"]

    def exported(path: Path) -> bool:
        return export_is_current(path / ONNX_DIR) and all(weights_file(path, b).is_file() for b in onnx)

    if model.path is None or not onnx or exported(model.path):
        return model
    if not model.owned:
        copy = BENCH_DIR / f"{model.path.name}-copy"
        same = (copy / CHECKSUMS).is_file() and (copy / CHECKSUMS).read_bytes() == (
            model.path / CHECKSUMS
        ).read_bytes()
        if not same:  # absent, or a copy of an older version of the model
            print(f"copying {model.path} to {copy} to export it to ONNX (the original is left as it is) ...")
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(model.path, copy, ignore=shutil.ignore_patterns("onnx"))
        model = ModelChoice(f"{model.name}, copied", copy.resolve(), owned=True)
    if not exported(model.path):
        print(f"exporting {model.path.name} to ONNX (fp32 and int8) ...")
        export_onnx(model.path, quantize=True)
    return model


def weights_file(path: Path, backend: str) -> Path:
    """The file whose weights run the encoder under `backend` (a `BACKENDS` name)."""
    kind, quantize, _ = BACKENDS[backend]
    if kind != "onnx":
        return path / WEIGHTS
    return path / ONNX_DIR / (INT8 if quantize == "int8" else FP32)


def model_size(path: Path, backend: str = "torch") -> str:
    """`"110.1M / 421 MB"`: parameters in the artifact's weights, and the size of the file the backend runs."""
    from safetensors import safe_open

    params = 0
    with safe_open(str(path / WEIGHTS), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            shape = f.get_slice(key).get_shape()
            params += _numel(shape)
    size = weights_file(path, backend).stat().st_size / 2**20
    return f"{params / 1e6:.1f}M / {size:.0f} MB"


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for dim in shape:
        n *= int(dim)
    return n


def max_length(path: Path) -> int:
    return read_config(path).window.max_length


@dataclass(frozen=True)
class LengthStats:
    """How long the benchmarked articles are, in the model's tokens and windows."""

    tokens: list[int]  # content tokens per article (title and body, no [CLS]/[SEP], overlaps counted once)
    windows: list[int]  # encoder windows per article
    read: list[
        int
    ]  # positions Naba's encoder runs per article: every window, [CLS]/[SEP] and overlaps included

    def line(self, max_len: int) -> str:
        t, w = sorted(self.tokens), sorted(self.windows)
        multi = sum(n > 1 for n in w) / len(w)
        return (
            f"tokens/article: mean {statistics.fmean(t):.0f}, p50 {percentile(t, 50):.0f}, "
            f"p95 {percentile(t, 95):.0f}, max {t[-1]}; windows of {max_len}/article: mean "
            f"{statistics.fmean(w):.2f}, max {w[-1]}; {multi:.0%} of articles need more than one window"
        )

    def truncated_share(self, max_len: int) -> float:
        """The share of the articles' tokens that a reader of only the first window (`truncation=True`) sees."""
        return sum(min(t, max_len - 2) for t in self.tokens) / max(1, sum(self.tokens))


def length_stats(predictor: object, articles: Sequence[Article]) -> LengthStats:
    """Tokens and windows per article as `predictor` (a `naba.models.predictor.Predictor`) encodes them."""
    overlap = predictor.config.window.overlap  # type: ignore[attr-defined]
    tokens, windows, read = [], [], []
    for article in articles:
        encoded = predictor.encode(article)  # type: ignore[attr-defined]
        n = len(encoded.windows)
        windows.append(n)
        read.append(encoded.n_tokens)
        tokens.append(read[-1] - 2 * n - overlap * (n - 1))
    return LengthStats(tokens, windows, read)


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (linear interpolation), or NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-style markdown table; floats are printed as they come, so format them first."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(threads: int) -> str:
    """CPUs, threads and load; says so when the machine is busy enough to make the numbers unreliable."""
    cpus = default_threads()
    line = f"{cpus} CPUs, torch threads: {threads}"
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        line += f", load average {load:.1f} at start"
        if load > 0.5 * cpus:
            line += " (**busy machine: other work competes for the CPUs, numbers are unreliable**)"
    return line


def default_threads() -> int:
    """Every CPU this process may run on: the same intra-op thread count is given to both sides."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both speed benches share: which models, which backend, where and on how many threads."""
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help="base, default or an artifact path; repeat for several (default: base, then default).",
    )
    parser.add_argument(
        "--backend",
        nargs="+",
        default=None,
        choices=list(BACKENDS),
        help="Naba backends to time, all in the same run (default: torch, torch-bf16 where the CPU has bf16 "
        "instructions, and onnx-int8 on CPU; torch on GPU).",
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=default_threads(), help="torch intra-op threads.")
