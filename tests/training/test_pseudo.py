"""`naba pseudo-label`: a trained model's confident calls on unlabelled articles become training records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from naba.cli import main as naba
from naba.models.onnx_backend import export_onnx
from naba.models.predictor import Predictor
from naba.models.records import Record, read_records
from naba.models.results import Article
from naba.training.pseudo import decider, model_decisions
from naba.training.weak import label_corpus
from tests.conftest import NEGATIVES, seed_records, write_jsonl


def _corpus(tmp_path: Path) -> Path:
    rows = [{"id": f"AL-seed-{i}", "text": r["text"]} for i, r in enumerate(seed_records())]
    rows += [{"id": f"JA-neg-{i}", "text": text} for i, text in enumerate(NEGATIVES)]
    return write_jsonl(tmp_path / "corpus.jsonl", rows)


def test_decisions_follow_the_calibrated_probabilities(predictor: Predictor) -> None:
    articles = [Article(r["text"], id=r["id"]) for r in seed_records()] + [Article(t) for t in NEGATIVES]
    records = [Record(id=a.id or f"n{i}", text=a.text) for i, a in enumerate(articles)]
    for confidence in (0.5, 0.7):
        calls = model_decisions(predictor, records, confidence)
        analyses = predictor.analyze(articles)
        for record, decisions, analysis in zip(records, calls, analyses, strict=True):
            assert list(decisions) == predictor.labels
            for label, decision in decisions.items():
                p = analysis.scores[label]
                assert decision.probability == pytest.approx(p, abs=1e-6)
                expected = True if p >= confidence else False if p <= 1 - confidence else None
                assert decision.value is expected
                if decision.value:  # its evidence is the first sentence the predictor quotes for the label
                    a, b = decision.evidence or (0, 0)
                    sentences = analysis.sentences
                    quoted = predictor.evidence_indices(
                        sentences, predictor.score([predictor.encode(Article(record.text))])[0],
                        predictor.labels.index(label),
                    )  # fmt: skip
                    assert record.text[a:b] == sentences[quoted[0]]
                else:
                    assert decision.evidence is None


def test_pseudo_label_writes_confident_articles_naba_train_reads(
    predictor: Predictor, tmp_path: Path
) -> None:
    out = tmp_path / "pseudo.jsonl"
    report = label_corpus([_corpus(tmp_path)], out, decider(predictor, 0.5), batch_size=3, progress=False)

    n = len(seed_records()) + len(NEGATIVES)
    records = read_records([out], known_labels=predictor.labels)
    assert report.read == n and report.emitted + report.abstained == n and report.emitted == len(records)
    assert [label for label in report.positives if label != "none"] == predictor.labels  # zeros included
    assert all(f"{label} {report.positives[label]}" in str(report) for label in predictor.labels)
    rows = {json.loads(line)["id"]: json.loads(line) for line in out.read_text("utf-8").splitlines()}
    analyses = predictor.analyze([Article(r.text) for r in records])
    for record, analysis in zip(records, analyses, strict=True):
        assert set(record.labels or ()) == {lbl for lbl, p in analysis.scores.items() if p >= 0.5}
        assert set(record.evidence or {}) == set(record.labels or ())
        assert all(quote in record.text for quote in (record.evidence or {}).values())
        assert set(rows[record.id]["weak"]) == set(predictor.labels)


def test_held_out_articles_and_unlabelled_over_the_cap_are_not_written(
    predictor: Predictor, tmp_path: Path
) -> None:
    corpus = _corpus(tmp_path)
    held = read_records([write_jsonl(tmp_path / "held.jsonl", [{"id": "AL-seed-0", "text": "نص آخر"}])])
    out = tmp_path / "pseudo.jsonl"
    report = label_corpus(
        [corpus], out, decider(predictor, 0.5), exclude_texts=held, max_unlabelled=1, progress=False
    )
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert report.excluded_labelled == 1 and "AL-seed-0" not in {r["id"] for r in rows}
    assert sum(not r["labels"] for r in rows) <= 1
    assert report.emitted + report.abstained + report.over_cap + report.excluded_labelled == report.read


def test_cli_pseudo_label(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "pseudo.jsonl"
    args = [
        "pseudo-label",
        "--model",
        str(model_dir),
        "--corpus",
        str(_corpus(tmp_path)),
        "--output",
        str(out),
    ]
    assert naba([*args, "--holdout", "--min-confidence", "0.5", "--device", "cpu", "--no-progress"]) == 0
    assert len(read_records([out])) == len(seed_records()) + len(NEGATIVES)  # at 0.5 every label is decided
    with pytest.raises(SystemExit):
        naba([*args, "--min-confidence", "1.0"])
    assert naba([*args, "--backend", "onnx", "--device", "cpu"]) == 1  # no export yet: a clear error, exit 1


def test_cli_pseudo_label_on_the_int8_backend(model_dir: Path, tmp_path: Path) -> None:
    exported = Path(shutil.copytree(model_dir, tmp_path / "model"))
    export_onnx(exported, quantize=True)
    out = tmp_path / "pseudo.jsonl"
    args = [
        "pseudo-label",
        "--model",
        str(exported),
        "--corpus",
        str(_corpus(tmp_path)),
        "--output",
        str(out),
    ]
    args += ["--holdout", "--min-confidence", "0.5", "--device", "cpu", "--no-progress"]
    assert naba([*args, "--backend", "onnx", "--quantize", "int8"]) == 0
    assert len(read_records([out])) == len(seed_records()) + len(NEGATIVES)
