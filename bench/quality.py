"""Tagging and summary quality of Naba models against simple baselines, on the same splits, in one run.

Tagging (trained on `labelled/train.jsonl` or the `--train` files, measured on `labelled/dev.jsonl`):
  keyword rules   regular expressions written from the annotation guide, no training
  weak labeller   `naba weak-label`'s labelling functions and label model (accuracies fitted on train)
  TF-IDF + LR     scikit-learn, word 1-2-grams and char 3-5-grams, one logistic regression per label,
                  calibrated and thresholds tuned exactly as `naba train` does Naba's: on dev, or with
                  --cv K on out-of-fold scores of K-fold cross-validation over train
  + rule features TF-IDF + LR with one extra 0/1 feature per labelling function (did it fire); Naba's
                  lexical head (`naba train --lexical`) is this over word n-grams only
  each --model    a Naba artifact, through the same predictor the service uses
  --fine-tune E   an encoder (hub name or path) fine-tuned here with `naba train` on the labelled train set
                  and the first --bbc-train BBC summary pairs that are not dev articles; with --random-twin,
                  the same architecture and vocabulary from random weights is fine-tuned by the same recipe,
                  so the pretraining's effect is the difference between the two rows
  --ablation N=I  the first --fine-tune encoder trained with extra files and/or `naba train` flags I too
                  (weak labels, --rule-features): what one source of training signal adds, against the plain
                  --fine-tune row
Every row with probabilities also shows the mean expected calibration error (ECE): the weak labeller's and
TF-IDF's are Platt-scaled (`naba.training.calibration`) as `naba train` scales Naba's, so the column compares like
with like (without --cv it flatters all of them alike: it is measured on the data it was fitted on). Model
rows also show the evidence hit rate over every gold label (see `naba.training.evaluate.evidence_metrics`): as
served (the guide's rules rank sentences first, `NabaConfig.evidence_rules`) and from the evidence head alone.

Summaries (on `summaries/bbc_dev.jsonl`, Arabic-aware ROUGE F1): Lead-1, Lead-3, Oracle-1 (each article's
best single sentence, a ceiling) and each model at 1 and 3 sentences. Thresholds tuned on dev flatter every
tuned row equally; the held-out test set decides.

    python bench/quality.py --model models/default
    python bench/quality.py --cv 5 --model models/default     # every row decided by cross-validation on train
    python bench/quality.py --train ant_train.jsonl --model models/default --retune   # on the model's own data
    python bench/quality.py --fine-tune artifacts/pretrain/encoder --random-twin   # trains two models: slow
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy import sparse
from transformers import AutoConfig, AutoModel, AutoTokenizer

from naba.cli.train import TRAIN
from naba.models.lexical import featurize, lexical_text, make_vectorizers, rule_columns
from naba.models.predictor import Predictor, calibrated_probabilities
from naba.models.preprocessing import FOLD_ALL, normalize, split_sentences
from naba.models.records import Record, read_records
from naba.models.rules import rule_feature_names
from naba.training import weak
from naba.training.calibration import fit_calibration
from naba.training.cross_validation import fold_indices
from naba.training.evaluate import compute_metrics, evaluate, evidence_metrics, score_records
from naba.training.lexical import fit_logistic
from naba.training.metrics import classification_report, expected_calibration_error, tune_thresholds
from naba.training.rouge import rouge
from naba.training.train import drop_dev_overlap, train_model
from naba.training.tuning import truth_matrix, tune_on_dev

LABELS = ["attack", "coordination_centre", "joint_operation"]
# Keyword rules from LABELS.md, matched on folded text (alef/yaa/taa marbuta variants merged).
RULES = {
    "coordination_centre": r"مراكز? (ال)?تنسيق|غرف(ه|ة)? (ال)?عمليات (ال)?مشترك|خلي(ه|ة) (ال)?تنسيق|مركز مشترك",
    "joint_operation": r"عمليات? (عسكري(ه|ة) )?مشترك|القوات المشترك|باسناد|بمشارك(ه|ة) (قطعات|قوات)",
    "attack": r"هجوم|هجمات|تفجير|انتحاري|عبوه ناسف|اغتيال|قذائف|صاروخ|مسلحين|اطلاق نار",
}


# The baselines' n-grams: words and word pairs, and character 3-5-grams within words, which catch Arabic
# words under their clitics (و، ب، ال، ات) without a stemmer.
BASELINE_VECTORIZERS = (
    {"analyzer": "word", "ngram_range": (1, 2)},
    {"analyzer": "char_wb", "ngram_range": (3, 5)},
)


def truth(records: list[Record]) -> np.ndarray:
    return truth_matrix(records, LABELS).astype(int)


def report_row(
    name: str, y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray | None = None
) -> dict[str, float | str]:
    rep = classification_report(y_true, y_pred, LABELS)
    row: dict[str, float | str] = {"system": name, "macro_f1": rep["macro_f1"], "micro_f1": rep["micro_f1"]}
    row.update({lbl: rep["per_label"][lbl]["f1"] for lbl in LABELS})
    row["ECE"] = expected_calibration_error(probs, y_true)[1] if probs is not None else "—"
    row["evidence"] = row["evidence, head only"] = "—"
    return row


def keyword_rules(dev: list[Record]) -> np.ndarray:
    folded = [normalize(f"{r.title or ''} {r.text}", FOLD_ALL) for r in dev]
    patterns = {lbl: re.compile(normalize(p, FOLD_ALL)) for lbl, p in RULES.items()}
    return np.array([[int(bool(patterns[lbl].search(t))) for lbl in LABELS] for t in folded])


def weak_logits(train: list[Record], records: list[Record]) -> np.ndarray:
    """`naba weak-label`'s label model (guide rules, accuracies fitted on `train`) as a classifier: the log
    odds it gives each of `records`."""
    model = weak.LabelModel.fit(train)
    votes = [weak.article_votes(r) for r in records]
    raw = np.clip([[model.probability(v, lbl) for lbl in LABELS] for v in votes], 1e-12, 1 - 1e-12)
    return np.log(raw) - np.log1p(-raw)


def tfidf_logits(train: list[Record], records: list[Record], with_rules: bool = False) -> np.ndarray:
    """The logits of the regressions of Naba's lexical head (`naba.training.lexical`) over word and character
    n-grams, fitted on `train`; `with_rules` adds the labelling functions' votes as features: what the guide's
    rules add to a bag of n-grams."""
    vectorizers = make_vectorizers(BASELINE_VECTORIZERS)
    train_texts, texts = [lexical_text(r) for r in train], [lexical_text(r) for r in records]
    x_train = sparse.hstack([v.fit_transform(train_texts) for v in vectorizers]).tocsr()
    x = featurize(vectorizers, texts)
    if with_rules:
        x_train = sparse.hstack([x_train, rule_columns(train, rule_feature_names())]).tocsr()
        x = sparse.hstack([x, rule_columns(records, rule_feature_names())]).tocsr()
    weights, bias = fit_logistic(x_train, truth(train))
    return np.asarray(x @ weights.T) + bias


Logits = Callable[[list[Record], list[Record]], np.ndarray]


def decided(logits: Logits, train: list[Record], dev: list[Record], cv: int) -> tuple[np.ndarray, np.ndarray]:
    """A baseline's dev decisions and calibrated probabilities, decided as a Naba model is: Platt scaling
    (`naba.training.calibration`) and F1-optimal thresholds fitted on out-of-fold scores of `cv`-fold
    cross-validation over `train` (`naba.training.cross_validation`, as `naba train --cv`), or on dev itself when
    `cv` is 0 (optimistic, as every dev-tuned row is)."""
    dev_logits = logits(train, dev)
    if cv:
        labelled = [r for r in train if r.labels is not None]
        tune_logits = np.zeros((len(labelled), len(LABELS)))
        for held in fold_indices(labelled, cv, seed=0):
            held_out = set(held)
            part = [r for i, r in enumerate(labelled) if i not in held_out]
            tune_logits[held] = logits(part, [labelled[i] for i in held])
        y_tune = truth(labelled)
    else:
        tune_logits, y_tune = dev_logits, truth(dev)
    calibration = fit_calibration(tune_logits, y_tune, LABELS)
    thresholds = tune_thresholds(calibrated_probabilities(tune_logits, calibration, LABELS), y_tune)
    probs = calibrated_probabilities(dev_logits, calibration, LABELS)
    return (probs >= thresholds).astype(int), probs


def lead(records: list[Record], n: int) -> dict[str, float]:
    return rouge([" ".join(split_sentences(r.text)[:n]) for r in records], [r.summary or "" for r in records])


def oracle_1(records: list[Record]) -> dict[str, float]:
    """ROUGE of each article's best single sentence by ROUGE-L against its reference: the ceiling of any
    one-sentence extractive summary, which shows how much room Lead-1 leaves."""
    best = []
    for r in records:
        sentences = split_sentences(r.text) or [r.text]
        best.append(max(sentences, key=lambda s: rouge([s], [r.summary or ""])["rougeL"]))
    return rouge(best, [r.summary or "" for r in records])


# The fine-tuning recipe of every --fine-tune row (the shipped model's recipe, see training/RECIPES.md).
FINE_TUNE_ARGS = ["--max-length", "256", "--window-overlap", "64", "--max-train-windows", "2",
                  "--learning_rate", "5e-4", "--per_device_train_batch_size", "16",
                  "--disable_tqdm", "true"]  # fmt: skip


def naba_train(argv: list[str]) -> Path:
    """`naba train` with these arguments, in this process (parsed as the command parses them): the artifact."""
    return train_model(*TRAIN.parse(argv))


def random_twin(encoder: str, output: Path, seed: int = 0) -> Path:
    """The encoder's architecture and vocabulary with fresh random weights: the control for pretraining."""
    torch.manual_seed(seed)
    AutoModel.from_config(AutoConfig.from_pretrained(encoder)).save_pretrained(output)
    AutoTokenizer.from_pretrained(encoder).save_pretrained(output)
    return output


def fine_tune(
    encoder: str | Path,
    train_files: list[Path],
    dev: Path,
    output: Path,
    epochs: float,
    flags: list[str],
    seed: int = 0,
    cv: int = 0,
) -> Path:
    """`naba train` with the bench recipe (plus `flags`); decisions are tuned by `cv`-fold cross-validation,
    or on dev when `cv` is 0."""
    args = ["--train", *map(str, train_files), "--dev", str(dev), "--base-model", str(encoder), *flags]
    recipe = [*FINE_TUNE_ARGS, "--seed", str(seed), "--num_train_epochs", str(epochs), "--cv", str(cv)]
    return naba_train([*args, "--output", str(output), *recipe])


def head_outside_dev(path: Path, n: int, output: Path, exclude: list[Record]) -> Path:
    """The first `n` articles of a JSONL file that are not in `exclude` (the dev sets), by `naba train`'s own
    rule (`naba.training.train.drop_dev_overlap`: same id or same normalised text), lines copied as they are."""
    keep = {r.id for r in drop_dev_overlap(read_records([path]), exclude)[:n]}
    with path.open(encoding="utf-8") as lines:
        output.write_text(
            "".join(line for line in lines if line.strip() and json.loads(line)["id"] in keep), "utf-8"
        )
    return output


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
    parser.add_argument(
        "--fine-tune", action="append", default=[], help="Encoder to fine-tune and measure (repeatable)."
    )
    parser.add_argument(
        "--random-twin", action="store_true", help="Also fine-tune each encoder's random twin."
    )
    parser.add_argument(
        "--ablation",
        action="append",
        default=[],
        metavar="NAME=ITEM[,ITEM]",
        help="Also fine-tune the first --fine-tune encoder with extra training files and/or `naba train` flags "
        "(items starting with --), e.g. 'weak labels=weak.jsonl' or 'rule features=--rule-features' (repeatable).",
    )
    parser.add_argument("--epochs", type=float, default=3.0, help="Fine-tuning epochs.")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="Seed of every fine-tuning run and random twin: rerun with others to see how much rows move.",
    )
    parser.add_argument("--bbc-train", type=int, default=1000, help="BBC summary pairs added to fine-tuning.")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="Keep fine-tuned models here (default: temp)."
    )
    parser.add_argument(
        "--train",
        type=Path,
        nargs="+",
        default=None,
        help="Labelled training files of the baselines and --fine-tune rows (default: labelled/train.jsonl), "
        "e.g. the ANT articles a shipped model was trained on, to compare it on the same data.",
    )
    parser.add_argument(
        "--cv",
        type=int,
        default=0,
        metavar="K",
        help="Decide every baseline and --fine-tune row on out-of-fold scores of K-fold cross-validation over the "
        "training data (`naba train --cv K`), never on dev: dev is then a report for every row alike. --model "
        "rows keep the decisions they were trained with. 0: tune on dev.",
    )
    parser.add_argument(
        "--retune",
        action="store_true",
        help="Re-tune each --model's decisions (calibration, lexical weights, thresholds) on this dev set first, "
        "in memory, as every baseline is: compares a model tuned on other dev data like with like.",
    )
    args = parser.parse_args()

    dev = read_records([args.data_dir / "labelled" / "dev.jsonl"])
    bbc = read_records([args.data_dir / "summaries" / "bbc_dev.jsonl"])
    train_paths = args.train or [args.data_dir / "labelled" / "train.jsonl"]
    train = drop_dev_overlap(read_records(train_paths), dev)
    y_dev = truth(dev)
    start = time.perf_counter()

    def with_rules(part: list[Record], records: list[Record]) -> np.ndarray:
        return tfidf_logits(part, records, with_rules=True)

    rows = [
        report_row("keyword rules", y_dev, keyword_rules(dev)),
        report_row("weak labeller (guide rules)", y_dev, *decided(weak_logits, train, dev, args.cv)),
        report_row("TF-IDF + LR", y_dev, *decided(tfidf_logits, train, dev, args.cv)),
        report_row("TF-IDF + LR + guide-rule features", y_dev, *decided(with_rules, train, dev, args.cv)),
    ]
    summaries = [{"system": "Lead-1", **lead(bbc, 1)}, {"system": "Lead-3", **lead(bbc, 3)},
                 {"system": "Oracle-1 (best single sentence, a ceiling)", **oracle_1(bbc)}]  # fmt: skip
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="naba-quality-"))
    workdir.mkdir(parents=True, exist_ok=True)
    models: list[tuple[str, Path]] = []
    if args.fine_tune:
        bbc_train = head_outside_dev(
            args.data_dir / "summaries" / "bbc_train.jsonl", args.bbc_train, workdir / "bbc.jsonl", dev + bbc
        )
        train_files = [*train_paths, bbc_train]
        dev_files = workdir / "dev.jsonl"
        dev_files.write_text((args.data_dir / "labelled" / "dev.jsonl").read_text("utf-8"), "utf-8")
        for i, encoder in enumerate(args.fine_tune):
            suffix = f"-seed{args.seed}" if args.seed else ""  # seed 0 keeps the names earlier runs used
            runs = [(f"fine-tuned {encoder}", f"pretrained{i}", encoder, [], [])]
            if args.random_twin:
                twin = random_twin(encoder, workdir / f"twin{i}{suffix}", seed=args.seed)
                runs.append(("same, random weights", f"random{i}", twin, [], []))
            if i == 0:  # training-signal ablations: the first encoder with extra training files or flags
                for name, items in (a.split("=", 1) for a in args.ablation):
                    flags = [x for x in items.split(",") if x.startswith("--")]
                    files = [Path(x) for x in items.split(",") if not x.startswith("--")]
                    runs.append(
                        (
                            f"+ {name}",
                            "ablation-" + re.sub(r"\W+", "-", name).strip("-"),
                            encoder,
                            files,
                            flags,
                        )
                    )
            for name, key, base, files, flags in runs:
                # An existing model is reused: rerun with other rows cheaply.
                output = workdir / f"{key}{suffix}"
                if not output.exists():
                    fine_tune(
                        base, train_files + files, dev_files, output, args.epochs, flags, args.seed, args.cv
                    )
                models.append((name, output))
    models += [(str(path), path) for path in args.model]
    for label, path in models:
        predictor = Predictor.from_dir(path, device="cpu", backend="torch")
        name = f"{predictor.ref.name} {predictor.ref.version} ({label})"
        if args.retune and path in args.model:  # fine-tuned rows were tuned on this dev set already
            tune_on_dev(predictor, dev)
            name += ", re-tuned on dev"
        scored = score_records(predictor, dev)
        metrics = compute_metrics(predictor, dev, scored)
        head_only = Predictor(predictor.model, predictor.tokenizer, replace(predictor.config, evidence_rules=False),
                              predictor.device, lexical=predictor.lexical)  # fmt: skip
        rows.append({"system": name, "macro_f1": metrics["macro_f1"], "micro_f1": metrics["micro_f1"],
                     **{lbl: metrics["per_label"][lbl]["f1"] for lbl in LABELS},
                     "ECE": metrics["ece"]["mean"], "evidence": metrics.get("evidence_hit_rate_all", "—"),
                     "evidence, head only": evidence_metrics(head_only, dev, scored).get(
                         "evidence_hit_rate_all", "—")})  # fmt: skip
        for n in (1, 3):
            summaries.append(
                {"system": f"{name} @{n}", **evaluate(predictor, bbc, summary_sentences=n)["rouge"]}
            )

    decisions = f"{args.cv}-fold cross-validation on train" if args.cv else "dev"
    print(f"## Tagging: train {len(train)}, dev {len(dev)} articles (F1; decisions tuned on {decisions})\n")
    columns = ["system", "macro_f1", "micro_f1", *LABELS, "ECE", "evidence", "evidence, head only"]
    print("| " + " | ".join(columns) + " |\n|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(fmt(row[c]) for c in columns) + " |")
    print(f"\n## Summaries: bbc_dev, {len(bbc)} articles (ROUGE F1, Arabic-aware)\n")
    print("| system | ROUGE-1 | ROUGE-2 | ROUGE-L |\n| --- | --- | --- | --- |")
    for row in summaries:
        print(f"| {row['system']} | {fmt(row['rouge1'])} | {fmt(row['rouge2'])} | {fmt(row['rougeL'])} |")
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
