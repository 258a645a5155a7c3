"""`naba.training.weak`: the label model over the guide's labelling functions, the output records and the CLI.

The labelling functions themselves (`naba.models.rules`) are tested in tests/models/test_rules.py.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from naba.cli import main as naba
from naba.models.errors import DataError
from naba.models.records import Record, read_records
from naba.models.rules import AT, CC, JO, LABELLING_FUNCTIONS, LABELS
from naba.training.weak import (
    LabelModel,
    article_votes,
    evaluate,
    fired_functions,
    no_positive_name,
    weak_label,
)
from tests.conftest import NEGATIVES, write_jsonl

ATTACK_ARTICLE = (
    "قتل خمسة أشخاص في هجوم انتحاري استهدف سوقا شعبيا في بغداد. "
    "وفجر انتحاري نفسه وسط المتسوقين بحزام ناسف. "
    "وقالت الشرطة إن التحقيقات جارية."
)
JOINT_ARTICLE = (
    "أعلنت القيادة انطلاق عملية مشتركة بين قوات البيشمركة والجيش العراقي بإسناد من طيران التحالف الدولي. "
    "وتعمل القوات تحت قيادة غرفة عمليات مشتركة افتتحت في أربيل. "
    "وقال مسؤول إن العملية تسير وفق الخطة."
)


def _even_model(accuracy: float = 0.9, min_confidence: float = 0.85) -> LabelModel:
    """Every function (and every implicit no-positive vote) equally accurate, even base rates."""
    names = [lf.name for lf in LABELLING_FUNCTIONS] + [no_positive_name(label) for label in LABELS]
    return LabelModel(dict.fromkeys(names, accuracy), dict.fromkeys(LABELS, 0.5), min_confidence)


def _gz_jsonl(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return path


def _corpus(tmp_path: Path) -> Path:
    """Corpus rows in the shared corpus's shape: an attack, a joint operation, negatives, a SaudiNewsNet row."""
    rows = [
        {"id": "AL-attack-1", "corpus": "ant_multisource", "title": "تفجير انتحاري", "text": ATTACK_ARTICLE},
        {"id": "SK-joint-1", "corpus": "ant_multisource", "title": "عملية مشتركة", "text": JOINT_ARTICLE},
        *[{"id": f"JA-neg-{i}", "corpus": "ant_jawhara", "text": t} for i, t in enumerate(NEGATIVES)],
        {"id": "SNN-00001", "corpus": "saudinewsnet", "text": ATTACK_ARTICLE + " وأدان المجلس الهجوم."},
    ]
    return _gz_jsonl(tmp_path / "corpus.jsonl.gz", rows)


def test_combining_abstains_on_conflicting_votes() -> None:
    model = _even_model()
    alone = article_votes(Record("a", "فجر انتحاري نفسه وسط السوق."))
    conflict = article_votes(Record("b", "فجر انتحاري نفسه وسط السوق. واندلعت اشتباكات في المدينة."))
    assert fired_functions(conflict, AT) == {"at_suicide": 1, "at_frontline_combat": -1}

    decided = model.decide(alone)[AT]
    assert decided.value is True and decided.probability == pytest.approx(0.9)  # a lone vote: its accuracy
    abstained = model.decide(conflict)[AT]
    assert abstained.value is None and abstained.probability == pytest.approx(0.5)


def test_no_evidence_is_a_confident_negative_and_evidence_is_a_body_sentence() -> None:
    model = _even_model()
    decisions = model.decide(article_votes(Record("n", NEGATIVES[1], title="أسعار النفط")))
    assert all(d.value is False for d in decisions.values())

    text = "وقالت الشرطة إن التحقيقات جارية. وقتل خمسة أشخاص بانفجار عبوة ناسفة."
    decision = model.decide(article_votes(Record("p", text, title="هجوم انتحاري")))[AT]
    assert decision.value is True
    assert text[slice(*decision.evidence)] == "وقتل خمسة أشخاص بانفجار عبوة ناسفة."


def test_fit_weighs_functions_by_their_accuracy_beyond_the_base_rate() -> None:
    rows = [Record(f"a{i}", "وقتل خمسة أشخاص بانفجار عبوة ناسفة.", labels=(AT,)) for i in range(6)]
    rows += [Record(f"n{i}", text, labels=()) for i, text in enumerate(NEGATIVES)]
    rows += [Record(f"k{i}", "ووقع الفريق في كمين التسلل مرة أخرى.", labels=()) for i in range(4)]
    model = LabelModel.fit(rows)
    assert model.base_rates[AT] == pytest.approx(6.5 / 17)
    assert model.accuracies["at_explosive_device"] == pytest.approx((6 + 2 * 0.85) / (6 + 2))
    assert model.weight("at_explosive_device") > 1.0  # right on all six of its votes
    assert model.weight(no_positive_name(AT)) < -1.0  # right on every article without attack words
    # "كمين" (ambush) was wrong on all four of its votes: clamped to no weight, never a vote against attack
    assert model.accuracies["at_shooting"] < 0.3 and model.weight("at_shooting") == 0.0
    with pytest.raises(DataError, match="no labelled records"):
        LabelModel.fit([Record("u", "نص")])


def test_weak_label_writes_records_naba_train_reads(tmp_path: Path) -> None:
    out = tmp_path / "weak.jsonl"
    report = weak_label([_corpus(tmp_path)], out, _even_model(), progress=False)

    records = {r.id: r for r in read_records([out], known_labels=LABELS)}
    assert report.read == 9 and report.emitted == len(records)
    assert records["AL-attack-1"].labels == (AT,)
    assert set(records["SK-joint-1"].labels or ()) == {CC, JO}
    assert all(records[f"JA-neg-{i}"].labels == () for i in range(len(NEGATIVES)))
    for record in records.values():
        assert set(record.evidence or {}) == set(record.labels or ())
        for quote in (record.evidence or {}).values():
            assert quote in record.text and quote.strip() == quote
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert all(set(row["weak"]) == set(LABELS) and min(row["weak"].values()) >= 0.85 for row in rows)
    assert report.positives[AT] == 2 and report.positives["none"] == len(NEGATIVES)
    assert not (tmp_path / "weak.jsonl.tmp").exists()


def test_weak_label_skips_uncertain_articles(tmp_path: Path) -> None:
    corpus = write_jsonl(
        tmp_path / "c.jsonl",
        [{"id": "u", "text": "فجر انتحاري نفسه وسط السوق. واندلعت اشتباكات في المدينة."}],
    )
    report = weak_label([corpus], tmp_path / "w.jsonl", _even_model(), progress=False)
    assert (report.emitted, report.abstained) == (0, 1)
    assert (tmp_path / "w.jsonl").read_text("utf-8") == ""


def test_exclude_corpus_drops_those_rows_by_id_prefix(tmp_path: Path) -> None:
    corpus, out = _corpus(tmp_path), tmp_path / "weak.jsonl"
    report = weak_label([corpus], out, _even_model(), exclude_corpora=["saudinewsnet"], progress=False)
    ids = {r.id for r in read_records([out])}
    assert report.excluded_corpus == 1 and "SNN-00001" not in ids and "AL-attack-1" in ids
    with pytest.raises(DataError, match="unknown corpus"):
        weak_label([corpus], out, _even_model(), exclude_corpora=["nonesuch"], progress=False)


def test_labelled_articles_are_never_emitted(tmp_path: Path) -> None:
    held = [Record("other-id", ATTACK_ARTICLE, labels=(AT,)), Record("SK-joint-1", "نص آخر", labels=())]
    out = tmp_path / "weak.jsonl"
    report = weak_label([_corpus(tmp_path)], out, _even_model(), exclude_texts=held, progress=False)
    ids = {r.id for r in read_records([out])}
    assert report.excluded_labelled == 2 and not ids & {"AL-attack-1", "SK-joint-1"}


def test_max_articles_stops_reading(tmp_path: Path) -> None:
    report = weak_label(
        [_corpus(tmp_path)], tmp_path / "w.jsonl", _even_model(), max_articles=3, progress=False
    )
    assert report.read == 3


def test_evaluate_reports_functions_and_labels() -> None:
    dev = [
        Record("a", ATTACK_ARTICLE, labels=(AT,), evidence={AT: ATTACK_ARTICLE.split(". ")[0]}),
        Record("j", JOINT_ARTICLE, labels=(CC, JO)),
        *[Record(f"n{i}", t, labels=()) for i, t in enumerate(NEGATIVES)],
    ]
    metrics = evaluate(_even_model(), dev)
    assert metrics["labels"][AT]["overall"]["f1"] == 1.0
    assert metrics["labels"][JO]["decided"]["precision"] == 1.0
    assert metrics["functions"]["at_suicide"]["coverage"] == pytest.approx(1 / len(dev))
    assert metrics["overall_macro_f1"] == 1.0 and metrics["emitted"]["articles"] == len(dev)
    # the first sentence carries three attack votes, the second two: the first is the evidence
    assert metrics["evidence_pairs"] == 1 and metrics["evidence_hit_rate"] == 1.0


def test_cli_weak_label_on_a_tiny_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"id": "t-a", "text": ATTACK_ARTICLE, "labels": [AT]},
            {"id": "t-j", "text": JOINT_ARTICLE, "labels": [CC, JO]},
            *[{"id": f"t-n{i}", "text": t, "labels": []} for i, t in enumerate(NEGATIVES)],
        ],
    )
    corpus = write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            {"id": "SNN-1", "text": ATTACK_ARTICLE + " وأدان المجلس الهجوم."},
            {"id": "AL-1", "text": "وقتل خمسة أشخاص بانفجار عبوة ناسفة زرعت في سيارة."},
            # no id: it gets the file name and line
            {"text": "افتتح المهرجان الدولي للسينما دورته الجديدة بحضور نجوم عرب."},
        ],
    )
    out = tmp_path / "out" / "weak.jsonl"
    args = ["weak-label", "--corpus", str(corpus), "--output", str(out), "--train", str(train)]
    args += ["--holdout", "--exclude-corpus", "saudinewsnet", "--min-confidence", "0.8", "--no-progress"]
    assert naba(args) == 0
    ids = [r.id for r in read_records([out], known_labels=LABELS)]
    assert "SNN-1" not in ids and "corpus.jsonl:3" in ids

    assert naba(["weak-label", "--evaluate", str(train), "--train", str(train)]) == 0
    assert "| at_suicide | attack | + |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        naba(["weak-label", "--corpus", str(corpus)])  # no --output


@pytest.mark.data
def test_weak_labeller_is_precise_on_the_dev_set(data_dir: Path) -> None:
    """Fitted on train only; on dev the labels it emits must stay precise (a regression guard)."""
    model = LabelModel.fit(read_records([data_dir / "labelled" / "train.jsonl"]))
    metrics = evaluate(model, read_records([data_dir / "labelled" / "dev.jsonl"]))
    # Measured at the default threshold (0.9): emitted 57% of dev, macro-F1 0.90 on them; precision on decided
    # articles 1.00 (coordination_centre, joint_operation) and 0.69 (attack). The bounds leave some slack.
    assert metrics["emitted"]["coverage"] >= 0.5
    assert metrics["emitted"]["macro_f1"] >= 0.85
    assert metrics["labels"][CC]["decided"]["precision"] >= 0.9
    assert metrics["labels"][JO]["decided"]["precision"] >= 0.9
    assert metrics["labels"][AT]["decided"]["precision"] >= 0.6
