"""Tagging and summary quality of Naba models against simple baselines, on the same splits, in one run.

Tagging (trained on `labelled/train.jsonl`, measured on `labelled/dev.jsonl`):
  keyword rules   regular expressions written from the annotation guide, no training
  TF-IDF + LR     scikit-learn, word 1-2-grams and char 3-5-grams, one logistic regression per label,
                  thresholds tuned on dev exactly as `naba train` tunes Naba's
  each --model    a Naba artifact, through the same predictor the service uses

Summaries (on `summaries/bbc_dev.jsonl`, Arabic-aware ROUGE F1): Lead-1, Lead-3 and each model at 1 and 3
sentences. Thresholds tuned on dev flatter every tuned row equally; the held-out test set decides.

    python bench/quality.py --model artifacts/run/model
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline, make_union

from models.predictor import Predictor
from models.preprocessing import FOLD_ALL, normalize, split_sentences
from training.data import Record, read_records
from training.evaluate import evaluate
from training.metrics import classification_report, tune_thresholds
from training.rouge import rouge

LABELS = ["attack", "coordination_centre", "joint_operation"]
# Keyword rules from LABELS.md, matched on folded text (alef/yaa/taa marbuta variants merged).
RULES = {
    "coordination_centre": r"مراكز? (ال)?تنسيق|غرف(ه|ة)? (ال)?عمليات (ال)?مشترك|خلي(ه|ة) (ال)?تنسيق|مركز مشترك",
    "joint_operation": r"عمليات? (عسكري(ه|ة) )?مشترك|القوات المشترك|باسناد|بمشارك(ه|ة) (قطعات|قوات)",
    "attack": r"هجوم|هجمات|تفجير|انتحاري|عبوه ناسف|اغتيال|قذائف|صاروخ|مسلحين|اطلاق نار",
}


def truth(records: list[Record]) -> np.ndarray:
    return np.array([[int(lbl in (r.labels or ())) for lbl in LABELS] for r in records])


def report_row(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | str]:
    rep = classification_report(y_true, y_pred, LABELS)
    row: dict[str, float | str] = {"system": name, "macro_f1": rep["macro_f1"], "micro_f1": rep["micro_f1"]}
    row.update({lbl: rep["per_label"][lbl]["f1"] for lbl in LABELS})
    return row


def keyword_rules(dev: list[Record]) -> np.ndarray:
    folded = [normalize(f"{r.title or ''} {r.text}", FOLD_ALL) for r in dev]
    patterns = {lbl: re.compile(normalize(p, FOLD_ALL)) for lbl, p in RULES.items()}
    return np.array([[int(bool(patterns[lbl].search(t))) for lbl in LABELS] for t in folded])


def tfidf_lr(train: list[Record], dev: list[Record]) -> np.ndarray:
    def texts(records: list[Record]) -> list[str]:
        return [normalize(f"{r.title or ''} {r.text}", FOLD_ALL) for r in records]

    y_train, y_dev = truth(train), truth(dev)
    probs = np.zeros(y_dev.shape, dtype=float)
    for k in range(len(LABELS)):
        model = make_pipeline(
            make_union(
                TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True),
            ),
            LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000),
        )
        model.fit(texts(train), y_train[:, k])
        probs[:, k] = model.predict_proba(texts(dev))[:, 1]
    return (probs >= tune_thresholds(probs, y_dev)).astype(int)


def lead(records: list[Record], n: int) -> dict[str, float]:
    return rouge([" ".join(split_sentences(r.text)[:n]) for r in records], [r.summary or "" for r in records])


def fmt(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("NABA_DATA_DIR", "../shared/data"))
    )
    parser.add_argument("--model", type=Path, action="append", default=[], help="Naba artifact (repeatable).")
    args = parser.parse_args()

    train = read_records([args.data_dir / "labelled" / "train.jsonl"])
    dev = read_records([args.data_dir / "labelled" / "dev.jsonl"])
    bbc = read_records([args.data_dir / "summaries" / "bbc_dev.jsonl"])
    y_dev = truth(dev)
    start = time.perf_counter()

    rows = [
        report_row("keyword rules", y_dev, keyword_rules(dev)),
        report_row("TF-IDF + LR", y_dev, tfidf_lr(train, dev)),
    ]
    summaries = [{"system": "Lead-1", **lead(bbc, 1)}, {"system": "Lead-3", **lead(bbc, 3)}]
    for path in args.model:
        predictor = Predictor.from_dir(path, device="cpu")
        name = f"{predictor.ref.name} {predictor.ref.version} ({path})"
        metrics = evaluate(predictor, dev)
        rows.append({"system": name, "macro_f1": metrics["macro_f1"], "micro_f1": metrics["micro_f1"],
                     **{lbl: metrics["per_label"][lbl]["f1"] for lbl in LABELS}})  # fmt: skip
        for n in (1, 3):
            summaries.append(
                {"system": f"{name} @{n}", **evaluate(predictor, bbc, summary_sentences=n)["rouge"]}
            )

    print(f"## Tagging: train {len(train)}, dev {len(dev)} articles (F1)\n")
    columns = ["system", "macro_f1", "micro_f1", *LABELS]
    print("| " + " | ".join(columns) + " |\n|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(fmt(row[c]) for c in columns) + " |")
    print(f"\n## Summaries: bbc_dev, {len(bbc)} articles (ROUGE F1, Arabic-aware)\n")
    print("| system | ROUGE-1 | ROUGE-2 | ROUGE-L |\n| --- | --- | --- | --- |")
    for row in summaries:
        print(f"| {row['system']} | {fmt(row['rouge1'])} | {fmt(row['rouge2'])} | {fmt(row['rougeL'])} |")
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
