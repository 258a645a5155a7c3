"""`naba evaluate`: the metrics file and table come from the same predictor the service uses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from naba.cli import main as naba
from naba.models.artifacts import read_config, sha256_file
from naba.models.onnx_backend import export_onnx
from naba.models.predictor import Predictor, Scores
from naba.models.preprocessing import split_sentences
from naba.models.records import Record, read_records
from naba.models.results import Analysis, Article, LabelResult, ModelRef
from naba.training.evaluate import (
    Scored,
    evidence_hit,
    evidence_metrics,
    predict_records,
    score_records,
)
from tests.conftest import NEGATIVES, seed_records, write_jsonl


def main(argv: list[str]) -> dict:
    """`naba evaluate ARGV`: the metrics it wrote to its --output."""
    assert naba(["evaluate", *argv]) == 0
    return json.loads(Path(argv[argv.index("--output") + 1]).read_text("utf-8"))


BODY = "بدأت القوات عملية مشتركة في كركوك. قال المتحدث إن الهجوم وقع ليلا. وأسفر الهجوم عن مقتل اثنين."
S = split_sentences(BODY)


def test_evaluate_writes_metrics_and_prints_the_table(model_dir: Path, tmp_path: Path, capsys) -> None:
    rows = seed_records()
    rows[0]["summary"] = rows[0]["text"].split("\n")[0]
    data = write_jsonl(tmp_path / "dev.jsonl", rows)
    out = tmp_path / "metrics.json"
    metrics = main(["--model", str(model_dir), "--data", str(data), "--output", str(out), "--device", "cpu"])

    saved = json.loads(out.read_text("utf-8"))
    assert saved == json.loads(json.dumps(metrics))
    assert set(saved["per_label"]) == {"attack", "coordination_centre", "joint_operation"}
    assert saved["per_label"]["coordination_centre"]["support"] == 5
    assert 0.0 <= saved["macro_f1"] <= 1.0 and 0.0 <= saved["micro_f1"] <= 1.0
    assert saved["n_summaries"] == 1 and set(saved["rouge"]) == {"rouge1", "rouge2", "rougeL"}
    assert saved["model"]["version"] == "test-1"
    assert set(saved["ece"]["per_label"]) == set(saved["per_label"]) and saved["ece"]["n_bins"] == 10
    assert saved["ece"]["mean"] == pytest.approx(np.mean(list(saved["ece"]["per_label"].values())))
    assert "evidence_hit_rate" not in saved  # the seeds carry no quotes
    printed = capsys.readouterr().out
    assert "coordination_centre" in printed and "macro" in printed.lower() and "ece" in printed


def test_score_records_gives_the_same_analyses_as_predict_records(predictor) -> None:
    records = [Record(id=r["id"], text=r["text"]) for r in seed_records()[:3]]
    records += [Record(id=f"neg-{i}", text=t) for i, t in enumerate(NEGATIVES[:2])]
    scored = score_records(predictor, records, batch_size=2)
    assert [s.analysis for s in scored] == predict_records(predictor, records, batch_size=2)
    for s in scored:
        assert s.analysis.scores == pytest.approx(
            dict(zip(predictor.labels, s.scores.label_probs, strict=True))
        )


def test_evidence_hit_when_a_sentence_holds_the_quote() -> None:
    assert evidence_hit(BODY, "عملية مشتركة", [S[0]]) is True
    assert evidence_hit(BODY, S[1], [S[2], S[1]]) is True  # the quote is the whole sentence


def test_evidence_miss_when_no_sentence_touches_the_quote() -> None:
    assert evidence_hit(BODY, "عملية مشتركة", [S[1], S[2]]) is False
    assert evidence_hit(BODY, "عملية مشتركة", []) is False


def test_evidence_quote_over_two_sentences_is_hit_by_either() -> None:
    quote = "وقع ليلا. وأسفر الهجوم"
    assert evidence_hit(BODY, quote, [S[1]]) is True
    assert evidence_hit(BODY, quote, [S[2]]) is True
    assert evidence_hit(BODY, quote, [S[0]]) is False


def test_evidence_matching_ignores_whitespace() -> None:
    body = "قال المتحدث إن الهجوم\nوقع  ليلا. وأسفر عن مقتل اثنين."
    assert evidence_hit(body, "الهجوم وقع ليلا", ["وقع ليلا."]) is True
    assert evidence_hit(body, "الهجوم وقع ليلا", ["وأسفر عن مقتل اثنين."]) is False


def test_evidence_quote_not_in_the_body_is_none() -> None:
    assert evidence_hit(BODY, "عنوان المقال", S) is None


class _FakePredictor:
    """Two labels; the evidence for a label is the sentence with the highest logit, as in `Predictor`."""

    labels = ("attack", "joint_operation")

    def evidence_indices(self, sentences: list[str], scores: Scores, k: int) -> list[int]:
        return [int(np.argmax(scores.sentence_logits[:, k]))]


def _scored(best: tuple[int, int], predicted: tuple[str, ...]) -> Scored:
    logits = np.zeros((len(S), 2))
    logits[best[0], 0] = logits[best[1], 1] = 1.0
    probs = np.array([0.9 if label in predicted else 0.1 for label in _FakePredictor.labels])
    labels = [
        LabelResult(lbl, 0.9, [S[best[k]]]) for k, lbl in enumerate(_FakePredictor.labels) if lbl in predicted
    ]
    analysis = Analysis(labels, dict(zip(_FakePredictor.labels, probs.tolist(), strict=True)), S[0], [0],
                        ModelRef("test", "1"), sentences=S)  # fmt: skip
    scores = Scores(
        label_probs=probs, sentence_logits=logits, summary_logits=np.zeros(len(S)), label_logits=probs
    )
    return Scored(analysis, scores)


def test_evidence_metrics_count_predicted_and_all_gold_pairs() -> None:
    both = ("attack", "joint_operation")
    records = [
        # attack predicted, its evidence S[1] holds the quote: a hit in both rates. joint_operation not
        # predicted; the evidence it would get, S[2], misses the quote in S[0]: a miss in the `all` rate only.
        Record(
            "a", BODY, labels=both, evidence={"attack": "الهجوم وقع ليلا", "joint_operation": "عملية مشتركة"}
        ),
        # attack predicted with S[0], the quote is in S[2]: a miss. The joint_operation quote is not in the body.
        Record("b", BODY, labels=both, evidence={"attack": "مقتل اثنين", "joint_operation": "عنوان المقال"}),
        Record("c", BODY, labels=both),  # no quotes: not counted
    ]
    scored = [_scored((1, 2), ("attack",)), _scored((0, 0), both), _scored((0, 0), both)]
    metrics = evidence_metrics(_FakePredictor(), records, scored)  # type: ignore[arg-type]
    assert metrics["evidence_hit_rate"] == pytest.approx(1 / 2) and metrics["evidence_pairs"] == 2
    assert metrics["evidence_hit_rate_all"] == pytest.approx(1 / 3) and metrics["evidence_pairs_all"] == 3
    assert metrics["evidence_quotes_not_found"] == 1
    per_label: dict[str, Any] = metrics["evidence_per_label"]
    assert per_label["attack"] == {"hit_rate": 0.5, "pairs": 2, "hit_rate_all": 0.5, "pairs_all": 2,
                                   "quotes_not_found": 0}  # fmt: skip
    assert per_label["joint_operation"] == {"hit_rate": None, "pairs": 0, "hit_rate_all": 0.0, "pairs_all": 1,
                                            "quotes_not_found": 1}  # fmt: skip
    assert evidence_metrics(_FakePredictor(), records[2:], scored[2:]) == {}  # type: ignore[arg-type]


def test_evaluate_report_writes_every_file(model_dir: Path, tmp_path: Path, capsys) -> None:
    rows = seed_records() + [{"id": f"neg-{i}", "text": t, "labels": []} for i, t in enumerate(NEGATIVES)]
    quotes = 0
    for row in rows[:5]:
        sentences = split_sentences(row["text"])
        row["evidence"] = {label: sentences[2] for label in row["labels"]}
        quotes += len(row["labels"])
    rows[0]["evidence"]["attack"] = rows[0]["text"][
        rows[0]["text"].index(split_sentences(rows[0]["text"])[2]) :
    ][: len(split_sentences(rows[0]["text"])[2]) + 40]  # a quote that runs into the next sentence
    data = write_jsonl(tmp_path / "dev.jsonl", rows)
    assert read_records([data])[0].evidence == rows[0]["evidence"]
    report = tmp_path / "report" / "nested"
    report.mkdir(parents=True)
    (report / "errors.md").write_text("stale", "utf-8")
    main(["--model", str(model_dir), "--data", str(data), "--output", str(tmp_path / "m.json"),
          "--device", "cpu", "--report", str(report)])  # fmt: skip

    labels = ["attack", "coordination_centre", "joint_operation"]
    expected = {
        "metrics.json",
        "labels.md",
        "reliability.png",
        "errors.md",
        *(f"pr_{lbl}.png" for lbl in labels),
    }
    assert {p.name for p in report.iterdir()} == expected
    for name in expected:
        if name.endswith(".png"):
            assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((report / "metrics.json").read_text("utf-8"))
    assert metrics["evidence_pairs_all"] == quotes and metrics["evidence_quotes_not_found"] == 0
    assert metrics["evidence_pairs"] == sum(v["pairs"] for v in metrics["evidence_per_label"].values())
    assert 0.0 <= metrics["evidence_hit_rate_all"] <= 1.0
    table = (report / "labels.md").read_text("utf-8")
    assert all(f"| {lbl} |" in table for lbl in labels) and "ECE" in table and "evidence hit rate" in table
    errors = (report / "errors.md").read_text("utf-8")
    assert "stale" not in errors and "## attack (threshold" in errors and "### False negatives" in errors
    printed = capsys.readouterr().out
    assert "evidence hit rate, all gold labels" in printed


def test_update_card_rewrites_metrics_and_keeps_weights_and_export(model_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(model_dir, tmp_path / "model"))
    export_onnx(copy)
    kept = {p.name: sha256_file(p) for p in copy.iterdir() if p.suffix in (".safetensors", ".json") and
            p.name not in ("naba_config.json", "metrics.json", "checksums.json")}  # fmt: skip
    rows = seed_records()
    rows[0]["evidence"] = {rows[0]["labels"][0]: split_sentences(rows[0]["text"])[0][:20]}
    data = write_jsonl(tmp_path / "dev.jsonl", rows)
    metrics = main(["--model", str(copy), "--data", str(data), "--output", str(tmp_path / "m.json"),
                    "--device", "cpu", "--update-card"])  # fmt: skip

    assert read_config(copy).metrics == json.loads(json.dumps(metrics))
    assert json.loads((copy / "metrics.json").read_text("utf-8")) == read_config(copy).metrics
    card = (copy / "README.md").read_text("utf-8")
    assert f"evidence hit rate {metrics['evidence_hit_rate_all']:.3f}" in card
    assert {name: sha256_file(copy / name) for name in kept} == kept
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left beside it
    Predictor.from_dir(copy, device="cpu", backend="onnx").analyze(
        [Article(rows[0]["text"])]
    )  # verifies sums


def test_report_plot_names_are_one_per_label_and_readable_in_any_script() -> None:
    from naba.training.report import plot_names

    labels = ["attack", "هجوم", "غرفة", "عملية مشتركة", "عملية_مشتركة", "a/b", "Attack"]
    names = plot_names(labels)
    assert len(set(names.values())) == len(labels)  # the old ASCII-only rule gave هجوم and غرفة one file
    assert len({n.casefold() for n in names.values()}) == len(labels)  # also on case-insensitive disks
    assert names["هجوم"] == "pr_هجوم.png" and names["غرفة"] == "pr_غرفة.png"  # Arabic names kept as they are
    assert names["عملية_مشتركة"] == "pr_عملية_مشتركة.png"
    assert names["عملية مشتركة"].startswith("pr_عملية_مشتركة-")  # respelt, so a hash tells it apart
    assert all("/" not in n for n in names.values())
    assert plot_names(["attack", "joint_operation"]) == {"attack": "pr_attack.png",
                                                         "joint_operation": "pr_joint_operation.png"}  # fmt: skip


@pytest.mark.parametrize("model", ["model_dir", "lexical_model_dir"])
def test_retune_refits_the_decisions_on_new_data_and_keeps_the_weights(
    model: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from naba.training.tuning import tune_on_dev

    copy = Path(shutil.copytree(request.getfixturevalue(model), tmp_path / "model"))
    before = read_config(copy)
    # The network's weights, and a lexical head's n-gram weights: only its per-label weight is a decision.
    kept = sorted(p.name for p in copy.iterdir() if p.suffix == ".safetensors")
    weights = {name: sha256_file(copy / name) for name in kept}
    # New labelled data: the seeds relabelled so that every article is an attack, plus negatives.
    rows = [{**r, "labels": ["attack"], "evidence": {}} for r in seed_records()]
    rows += [{"id": f"neg-{i}", "text": t, "labels": []} for i, t in enumerate(NEGATIVES)]
    data = write_jsonl(tmp_path / "new_dev.jsonl", rows)
    expected = Predictor.from_dir(copy, device="cpu")
    tune_on_dev(expected, read_records([data]))
    assert expected.config.thresholds != before.thresholds  # the new data asks for other decisions

    args = [
        "--model",
        str(copy),
        "--data",
        str(data),
        "--output",
        str(tmp_path / "m.json"),
        "--device",
        "cpu",
    ]
    main([*args, "--retune"])  # without --update-card nothing is written
    assert read_config(copy).thresholds == before.thresholds
    metrics = main([*args, "--retune", "--update-card"])

    after = read_config(copy)
    assert after.thresholds == expected.config.thresholds
    assert after.operating_points == expected.config.operating_points
    assert after.calibration == expected.config.calibration
    assert after.lexical_weights == expected.config.lexical_weights
    assert len(after.lexical_weights) == (3 if model == "lexical_model_dir" else 0)
    assert after.metrics == json.loads(json.dumps(metrics))
    assert {name: sha256_file(copy / name) for name in kept} == weights
    served = Predictor.from_dir(copy, device="cpu")  # checksums verified on load
    assert served.thresholds == dict(zip(after.labels, after.thresholds, strict=True))


def test_retune_needs_labelled_data(model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "summaries.jsonl", [{"id": "s1", "text": NEGATIVES[0], "summary": "ملخص"}])
    with pytest.raises(SystemExit) as caught:
        main(
            ["--model", str(model_dir), "--data", str(data), "--output", str(tmp_path / "m.json"), "--retune"]
        )
    assert caught.value.code == 2
