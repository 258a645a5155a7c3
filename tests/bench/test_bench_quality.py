"""`bench/quality.py`'s summary baselines (Lead-n, the Oracle-1 ceiling), its fine-tuning recipe and data (no
dev article in the BBC pairs), and its baselines' decisions: calibrated and thresholded on dev, or on
out-of-fold scores with --cv, as `naba train` decides Naba's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import quality
from bench.quality import lead, oracle_1
from naba.models.records import Record
from naba.training.metrics import expected_calibration_error
from tests.conftest import NEGATIVES, seed_records, write_jsonl

RECORDS = [
    Record(
        id="a",
        text="افتتح المعرض الدولي للكتاب أبوابه. وقتل ثلاثة جنود في هجوم على حاجز أمني شمال البلاد.",
        summary="مقتل ثلاثة جنود في هجوم على حاجز أمني شمال البلاد",
    ),
    Record(
        id="b",
        text="أعلن الجيش بدء عملية مشتركة. وقال المتحدث إن العملية مستمرة.",
        summary="بدء عملية مشتركة",
    ),
]


def test_oracle_1_picks_each_articles_best_sentence() -> None:
    best = oracle_1(RECORDS)
    assert best["rougeL"] > lead(RECORDS, 1)["rougeL"]  # article a's best sentence is its second
    assert oracle_1(RECORDS[1:]) == pytest.approx(lead(RECORDS[1:], 1))  # b's best is its first


def test_fine_tuning_rows_train_with_the_seed_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(quality, "naba_train", lambda argv: calls.append(argv) or tmp_path)
    quality.fine_tune(
        "enc", [tmp_path / "train.jsonl"], tmp_path / "dev.jsonl", tmp_path / "out", 3.0, [], seed=7
    )
    argv = calls[0]
    assert argv[argv.index("--seed") + 1] == "7" and argv.count("--seed") == 1
    assert argv[argv.index("--base-model") + 1] == "enc"


def test_bbc_pairs_leave_out_dev_articles_by_naba_trains_rule(tmp_path: Path) -> None:
    pairs = [
        {"id": "dev-id", "text": "نص أول. وجملة ثانية.", "summary": "ملخص"},  # a dev article's id
        {"id": "copy", "text": "  نص   المقال الثاني. ", "summary": "ملخص"},  # a dev article's text, respaced
        {"id": "a", "text": "نص ثالث مختلف.", "summary": "ملخص"},
        {"id": "b", "text": "نص رابع مختلف.", "summary": "ملخص"},
        {"id": "c", "text": "نص خامس مختلف.", "summary": "ملخص"},
    ]
    source = write_jsonl(tmp_path / "bbc_train.jsonl", pairs)
    dev = [Record("dev-id", "نص آخر تماما."), Record("d2", "نص المقال الثاني.")]
    out = quality.head_outside_dev(source, 2, tmp_path / "bbc.jsonl", dev)
    assert [json.loads(line)["id"] for line in out.read_text("utf-8").splitlines()] == ["a", "b"]


def _tiny_split() -> tuple[list[Record], list[Record]]:
    labelled = [Record(r["id"], r["text"], labels=tuple(r["labels"])) for r in seed_records()]
    labelled += [Record(f"neg-{i}", t, labels=()) for i, t in enumerate(NEGATIVES)]
    return labelled, labelled


@pytest.mark.parametrize("baseline", ["tfidf", "weak"])
def test_baseline_probabilities_are_calibrated_on_dev_like_naba(
    baseline: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without --cv, Naba's ECE is measured on scores Platt-scaled on dev; the baselines' must be too.
    calls: list[np.ndarray] = []

    def fit(logits: np.ndarray, y: np.ndarray, labels: list[str]) -> dict:
        calls.append(y)
        return {}

    monkeypatch.setattr(quality, "fit_calibration", fit)
    train, dev = _tiny_split()
    logits = quality.tfidf_logits if baseline == "tfidf" else quality.weak_logits
    _, probs = quality.decided(logits, train, dev, cv=0)
    assert np.array_equal(calls[0], quality.truth(dev))
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-logits(train, dev))), rtol=1e-6)  # identity: raw


def test_cv_decisions_come_from_out_of_fold_scores_only() -> None:
    """With --cv, a baseline fitted on a fold never scores that fold, and dev is scored once, by the
    baseline fitted on all of train."""
    train, _ = _tiny_split()
    dev = [Record("d1", NEGATIVES[0], labels=())]
    calls: list[tuple[set[str], set[str]]] = []

    def logits(part: list[Record], records: list[Record]) -> np.ndarray:
        calls.append(({r.id for r in part}, {r.id for r in records}))
        return np.zeros((len(records), 3))

    quality.decided(logits, train, dev, cv=3)
    assert calls[0] == ({r.id for r in train}, {"d1"})
    folds = calls[1:]
    assert len(folds) == 3 and all(not fitted & scored for fitted, scored in folds)
    assert set().union(*(scored for _, scored in folds)) == {r.id for r in train}


def test_dev_calibration_lowers_an_over_confident_baselines_ece() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((300, 3)) < 0.3).astype(int)
    raw_logits = 6.0 * (y - 0.5) + rng.normal(0.0, 3.0, y.shape)  # right more often than not, far too sure
    dev = [Record(f"d{i}", "نص", labels=tuple(np.array(quality.LABELS)[row == 1])) for i, row in enumerate(y)]
    _, calibrated = quality.decided(lambda _train, _records: raw_logits, [], dev, cv=0)
    raw = 1 / (1 + np.exp(-raw_logits))
    assert expected_calibration_error(calibrated, y)[1] < expected_calibration_error(raw, y)[1] / 2


def test_one_run_prints_every_baseline_and_each_model_given(
    model_dir: Path, lexical_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """End to end on a tiny data directory: the baselines, then a row per model, with or without a lexical
    head (its evidence-head-only row rebuilds the predictor with the head)."""
    rows = [{**r, "evidence": {}} for r in seed_records()]
    rows += [{"id": f"neg-{i}", "text": t, "labels": []} for i, t in enumerate(NEGATIVES)]
    (tmp_path / "labelled").mkdir()
    (tmp_path / "summaries").mkdir()
    write_jsonl(tmp_path / "labelled" / "train.jsonl", rows)
    dev = [{**r, "id": f"dev-{r['id']}", "text": r["text"] + " وقال مصدر إن الوضع هادئ."} for r in rows]
    write_jsonl(
        tmp_path / "labelled" / "dev.jsonl", dev
    )  # other texts: not dropped from train as dev articles
    write_jsonl(tmp_path / "summaries" / "bbc_dev.jsonl",
                [{"id": f"s{i}", "text": t, "summary": t.split(".")[0]} for i, t in enumerate(NEGATIVES)])  # fmt: skip
    argv = [
        "quality.py",
        "--data-dir",
        str(tmp_path),
        "--model",
        str(model_dir),
        "--model",
        str(lexical_model_dir),
    ]
    monkeypatch.setattr("sys.argv", argv)
    quality.main()
    out = capsys.readouterr().out
    for system in (
        "keyword rules",
        "weak labeller",
        "TF-IDF + LR |",
        "TF-IDF + LR + guide-rule features",
        "Lead-1",
    ):
        assert system in out
    assert f"({model_dir})" in out and f"({lexical_model_dir})" in out
    assert f"train {len(rows)}, dev {len(dev)} articles" in out and "re-tuned" not in out

    # The baselines on other training data (a shipped model's own), and each model re-tuned on this dev set.
    subset = write_jsonl(tmp_path / "subset.jsonl", rows[:8])
    monkeypatch.setattr("sys.argv", [*argv, "--train", str(subset), "--retune"])
    quality.main()
    out = capsys.readouterr().out
    assert f"train 8, dev {len(dev)} articles" in out
    assert f"({model_dir}), re-tuned on dev" in out and f"({lexical_model_dir}), re-tuned on dev" in out

    # Every baseline decided by cross-validation on train: the table says so.
    monkeypatch.setattr("sys.argv", [*argv, "--cv", "2"])
    quality.main()
    assert "decisions tuned on 2-fold cross-validation on train" in capsys.readouterr().out
