"""Kill `naba predict` and `naba train` with SIGKILL at awkward moments, then finish the job.

`naba predict` promises that a rerun resumes a killed run and writes every input id exactly once; `naba train`
promises that a killed run leaves nothing at `--output`. Both run here as real subprocesses
(`python -m naba.cli`), killed with no chance to clean up. Each subprocess pays the torch import (several
seconds on a busy machine), so the predict scenario kills a run twice and resumes in the same output rather than
starting over for every kill point.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from naba.models.predictor import Predictor
from naba.models.results import Article
from tests.conftest import NEGATIVES, REPO, TRAIN_ARGS, naba_train, seed_records, write_jsonl

N_ARTICLES = 80
POLL_S = 0.005
START_TIMEOUT_S = 120  # imports and model load, on a loaded 2-core machine


def synthetic_articles(n: int, seed: int = 0) -> list[dict]:
    """`n` distinct Arabic articles: sentences of the seeds and negatives, shuffled, with a numbered lead."""
    rng = random.Random(seed)
    pool = [
        sentence.strip() + "."
        for text in [r["text"] for r in seed_records()] + NEGATIVES
        for sentence in text.replace("\n", " ").split(".")
        if sentence.strip()
    ]
    rows = []
    for i in range(n):
        body = " ".join(rng.sample(pool, rng.randint(4, 16)))
        rows.append({"id": f"art-{i:03d}", "title": f"تقرير رقم {i}", "text": f"نشرة رقم {i}. {body}"})
    return rows


def child_env() -> dict[str, str]:
    """Offline, one torch thread (the machine is shared), unbuffered so logs reach the file as they happen."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "naba.cli", *args],
            cwd=REPO,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], log: Path) -> None:
    """SIGKILL `proc` as soon as `ready()` holds; fail if it exits first (the kill must land mid-run)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(
                f"exited ({proc.returncode}) before the kill point:\n{log.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"kill point not reached in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
        time.sleep(POLL_S)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the process ended on its own before the kill landed"


def complete_lines(path: Path) -> int:
    """Newline-terminated lines in `path` (0 if it does not exist yet)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def assert_results_then_torn_tail(path: Path) -> None:
    """After a kill: every complete line is a JSON result with an id; only an unterminated tail may be torn."""
    *complete, _tail = path.read_bytes().split(b"\n")
    for number, raw in enumerate(complete, start=1):
        assert isinstance(json.loads(raw).get("id"), str), f"line {number} of {path.name}: {raw[:80]!r}"


def test_predict_killed_twice_resumes_to_every_id_exactly_once(model_dir: Path, tmp_path: Path) -> None:
    rows = synthetic_articles(N_ARTICLES)
    data = write_jsonl(tmp_path / "articles.jsonl", rows)
    out = tmp_path / "results.jsonl"
    log = tmp_path / "predict.log"
    args = ["predict", "--model", str(model_dir), "--input", str(data), "--output", str(out)]
    args += ["--batch-size", "2", "--chunk-size", "4", "--device", "cpu", "--no-progress"]

    # 1. Very early: the moment the run opens its output, before the first chunk is synced.
    kill_when(start(args, log), out.exists, log)
    early = complete_lines(out)
    assert_results_then_torn_tail(out)
    # 2. Mid-run, once a good part of the archive is written; the rerun resumes from the first kill.
    kill_when(start(args, log), lambda: complete_lines(out) >= N_ARTICLES // 2, log)
    middle = complete_lines(out)
    assert_results_then_torn_tail(out)
    assert middle < N_ARTICLES, "the mid-run kill landed after the run had written everything"
    # 3. To completion.
    finished = subprocess.run(
        [sys.executable, "-m", "naba.cli", *args], cwd=REPO, env=child_env(), capture_output=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr.decode()[-3000:]

    lines = out.read_text("utf-8").splitlines()
    results = [json.loads(line) for line in lines]  # every line is one JSON object: no torn or merged lines
    counts = Counter(r["id"] for r in results)
    assert sorted(counts) == sorted(r["id"] for r in rows)
    assert set(counts.values()) == {1}, {i: c for i, c in counts.items() if c > 1}
    assert all(set(r) == {"id", "labels", "scores", "summary", "summary_indices", "model"} for r in results)
    assert (tmp_path / "results.errors.jsonl").read_text("utf-8") == ""
    print(f"\npredict kill/resume: lines at kill 1 = {early}, at kill 2 = {middle}, final = {len(lines)}")  # noqa: T201


def test_train_killed_mid_training_leaves_no_output_and_reruns(
    encoder_dir: Path, train_file: Path, tmp_path: Path
) -> None:
    output = tmp_path / "model"
    log = tmp_path / "train.log"
    # No --dev: evaluation adds time and nothing to what is tested here.
    base = ["--train", str(train_file), "--base-model", str(encoder_dir), "--output", str(output)]
    epochs_at = TRAIN_ARGS.index("--num_train_epochs") + 1

    def with_epochs(epochs: int) -> list[str]:
        return [*TRAIN_ARGS[:epochs_at], str(epochs), *TRAIN_ARGS[epochs_at + 1 :]]

    # Kill once the trainer has logged its first step: training is under way in the hidden work directory.
    def training() -> bool:
        workdirs = list(tmp_path.glob(".model.train.*"))
        return bool(workdirs) and "'loss'" in log.read_text("utf-8", errors="replace")

    kill_when(start(["train", *base, *with_epochs(200), "--logging_steps", "1"], log), training, log)
    assert not output.exists(), "a killed training run left something at --output"
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".model."))
    assert leftovers, "the kill landed before the work directory existed"

    # The rerun (in-process: the parsing and library `naba train` runs) writes a complete, loadable artifact.
    assert naba_train([*base, *with_epochs(1)]) == output
    predictor = Predictor.from_dir(output, device="cpu")
    [analysis] = predictor.analyze([Article(text=seed_records()[0]["text"])])
    assert set(analysis.scores) == set(predictor.labels)
    after = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".model."))
    # Nothing can clean up after SIGKILL, so the rerun does: the dead run's work directory is gone, and the
    # rerun leaves none of its own.
    assert after == []
    print(f"\ntrain kill: hidden dirs after the kill {leftovers}, after the rerun {after}")  # noqa: T201
