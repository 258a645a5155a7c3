"""The summary head fitted alone on a frozen encoder: only its weights move, tags and decisions stay exactly
as they were (`naba fit-summary`), and `naba train --summary-training frozen` keeps summary pairs out of the
tag training and out of the cross-validation folds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from naba.cli import main as naba
from naba.models.artifacts import load_artifact, read_config
from naba.models.errors import DataError
from naba.models.predictor import Predictor
from naba.models.records import Record, read_records
from naba.models.results import Article
from naba.training import train as train_module
from naba.training.summary_head import fit_summary_head
from tests.conftest import NEGATIVES, TRAIN_ARGS, naba_train, seed_records, write_jsonl

# The reference summary is each article's second sentence: a head that learns moves it to the top.
PAIRS = [Record(f"p{i}", text, summary=text.split(". ")[1]) for i, text in enumerate(NEGATIVES)]


def test_only_the_summary_head_moves_and_it_learns_the_oracle(model_dir: Path) -> None:
    model, tokenizer, config = load_artifact(model_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    predictor = Predictor(model, tokenizer, config, torch.device("cpu"))
    encoded = [predictor.encode(r.article) for r in PAIRS]

    def oracle_rank() -> float:
        return float(
            np.mean([np.argsort(-s.summary_logits).tolist().index(1) for s in predictor.score(encoded)])
        )

    rank = oracle_rank()
    fit_summary_head(model, tokenizer, PAIRS, config.labels, config.preprocessing, config.window,
                     epochs=60, learning_rate=1e-2)  # fmt: skip
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(("summary_head.", "position.")) for k in moved)
    assert oracle_rank() < rank and oracle_rank() == 0.0  # the second sentence now scores first
    assert not model.training  # left in eval mode


def test_fit_summary_needs_summaries(model_dir: Path) -> None:
    model, tokenizer, config = load_artifact(model_dir)
    with pytest.raises(DataError, match="no training article has a 'summary'"):
        fit_summary_head(model, tokenizer, [Record("a", NEGATIVES[0], labels=())], config.labels,
                         config.preprocessing, config.window)  # fmt: skip


def test_naba_fit_summary_writes_a_new_artifact_with_the_same_tags(
    lexical_model_dir: Path, tmp_path: Path
) -> None:
    pairs = write_jsonl(
        tmp_path / "pairs.jsonl", [{"id": r.id, "text": r.text, "summary": r.summary} for r in PAIRS]
    )
    out = tmp_path / "refitted"
    args = ["fit-summary", "--model", str(lexical_model_dir), "--train", str(pairs), "--output", str(out)]
    assert naba([*args, "--epochs", "3", "--version", "test-2"]) == 0
    old, new = read_config(lexical_model_dir), read_config(out)
    assert (new.thresholds, new.calibration, new.lexical_weights) == (
        old.thresholds,
        old.calibration,
        old.lexical_weights,
    )
    assert new.version == "test-2" and new.training["summary_head"]["articles"] == len(PAIRS)
    a, b = load_file(str(lexical_model_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert {k for k in a if not torch.equal(a[k], b[k])} <= {
        k for k in a if k.startswith(("summary_head.", "position."))
    }
    articles = [Article(r["text"]) for r in seed_records()]
    old_scores = [x.scores for x in Predictor.from_dir(lexical_model_dir, device="cpu").analyze(articles)]
    assert [x.scores for x in Predictor.from_dir(out, device="cpu").analyze(articles)] == old_scores
    assert naba(args) == 1  # the output exists: refused, nothing overwritten


def test_frozen_summary_training_keeps_pairs_out_of_tags_and_folds(
    tmp_path: Path, encoder_dir: Path, train_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained: list[tuple[list[str], bool]] = []
    fitted_pairs: list[list[str]] = []
    fit, fit_summary = train_module.fit, train_module.fit_summary_head

    def spy_fit(records: list[Record], *args: Any, **kwargs: Any) -> Any:
        trained.append(([r.id for r in records], kwargs.get("summaries", True)))
        return fit(records, *args, **kwargs)

    def spy_summary(model: Any, tokenizer: Any, pairs: list[Record], *args: Any, **kwargs: Any) -> float:
        fitted_pairs.append([r.id for r in pairs])
        return fit_summary(model, tokenizer, pairs, *args, **kwargs)

    monkeypatch.setattr(train_module, "fit", spy_fit)
    monkeypatch.setattr(train_module, "fit_summary_head", spy_summary)
    args = ["--train", str(train_file), "--base-model", str(encoder_dir), "--output", str(tmp_path / "m")]
    naba_train([*args, "--cv", "2", "--summary-training", "frozen", *TRAIN_ARGS])

    records = read_records([str(train_file)])
    pairs = sorted(r.id for r in records if r.summary)
    assert [s for _, s in trained] == [False, False, True]
    assert all(not set(ids) & set(pairs) for ids, _ in trained[:2])  # folds: labelled articles only
    assert fitted_pairs == [
        [r.id for r in records if r.summary]
    ]  # the summary head once, for the final model
    assert read_config(tmp_path / "m").training["summary_training"] == "frozen"
