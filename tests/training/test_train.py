"""`naba train`: a smoke run writes a complete artifact; retraining grows labels and exports for ONNX Runtime,
keeps or drops old labels only when told, and applies the loss weights given; training articles that are dev
articles are dropped; bad input fails early; `--rule-features` models read the guide's rules."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from naba.models.artifacts import read_config
from naba.models.errors import ArtifactError, DataError, NabaError
from naba.models.predictor import Predictor
from naba.models.records import Record
from naba.models.results import Article
from naba.models.rules import RULES_VERSION, rule_feature_names, rule_features
from naba.training.train import drop_dev_overlap
from tests.conftest import NEGATIVES, TRAIN_ARGS, naba_train, write_jsonl


def test_training_writes_thresholds_tuned_on_dev(model_dir: Path) -> None:
    config = read_config(model_dir)
    assert len(config.thresholds) == 3
    assert all(0.05 <= t <= 0.95 for t in config.thresholds)
    assert config.training["train_articles"] == 17
    assert config.metrics is not None and "per_label" in config.metrics and "rouge" in config.metrics


def test_retraining_grows_the_label_set_and_keeps_old_rows(model_dir: Path, tmp_path: Path) -> None:
    new = write_jsonl(
        tmp_path / "new.jsonl",
        [
            {"id": f"n{i}", "text": t, "labels": ["economy"] if "أسعار" in t else []}
            for i, t in enumerate(NEGATIVES)
        ],
    )
    output = tmp_path / "retrained"
    args = [
        "--train",
        str(new),
        "--init-from",
        str(model_dir),
        "--output",
        str(output),
        "--learning_rate",
        "0",
        "--export",
        "int8",
        # The new data has none of the old labels: keeping them is said explicitly.
        "--labels",
        "attack",
        "coordination_centre",
        "joint_operation",
        "economy",
    ]
    naba_train([*args, *[a for a in TRAIN_ARGS if a not in {"--learning_rate", "1e-3"}]])

    config = read_config(output)
    assert config.labels == ["attack", "coordination_centre", "joint_operation", "economy"]
    assert config.thresholds == [0.5] * 4  # no dev set: the neutral threshold
    old, grown = load_file(str(model_dir / "model.safetensors")), load_file(str(output / "model.safetensors"))
    assert grown["label_head.weight"].shape[0] == 4
    assert (grown["label_head.weight"][:3] == old["label_head.weight"]).all()  # lr 0: rows unchanged
    predictor = Predictor.from_dir(output, device="cpu")
    assert predictor.backend == "onnx-int8"  # `--export int8`: what the service's default backend serves
    analysis = predictor.analyze([Article(NEGATIVES[1])])[0]
    assert set(analysis.scores) == set(config.labels)


def test_retraining_on_labelled_data_without_an_old_label_says_to_keep_or_drop_it(
    model_dir: Path, tmp_path: Path
) -> None:
    rows = [
        {"id": f"n{i}", "text": t, "labels": ["economy"] if "أسعار" in t else []}
        for i, t in enumerate(NEGATIVES)
    ]
    new = write_jsonl(tmp_path / "new.jsonl", rows)
    output = tmp_path / "retrained"
    with pytest.raises(
        DataError, match="no article with attack, coordination_centre, joint_operation"
    ) as error:
        naba_train(["--train", str(new), "--init-from", str(model_dir), "--output", str(output)])
    assert "--labels economy drops them" in error.value.message
    assert "--labels attack coordination_centre joint_operation economy keeps them" in error.value.message
    assert not output.exists()

    # Without labelled articles the tagging head is not trained at all: nothing to decide, the labels stay.
    summaries = [
        {"id": f"s{i}", "text": t, "summary": t.split(".")[0] + "."} for i, t in enumerate(NEGATIVES)
    ]
    kept = _retrain(model_dir, write_jsonl(tmp_path / "summaries.jsonl", summaries), tmp_path / "summaries")
    assert read_config(kept).labels == read_config(model_dir).labels


def test_retraining_applies_the_loss_weights_given_and_keeps_the_artifacts_otherwise(
    model_dir: Path, train_file: Path, tmp_path: Path
) -> None:
    assert read_config(model_dir).training["evidence_weight"] == 1.0  # a new model: the defaults
    weighted = _retrain(
        model_dir, train_file, tmp_path / "weighted", "--evidence-weight", "0", "--summary-weight", "0.5"
    )
    again = _retrain(weighted, train_file, tmp_path / "again")  # no flags: the artifact's weights stay

    for output in (weighted, again):
        config = read_config(output)
        assert config.heads is not None
        assert (config.heads.evidence_weight, config.heads.summary_weight) == (0.0, 0.5)  # what the loss used
        assert (config.training["evidence_weight"], config.training["summary_weight"]) == (0.0, 0.5)


def test_dev_articles_are_dropped_from_training_by_id_or_by_text(caplog: pytest.LogCaptureFixture) -> None:
    text = "قُتِلَ ثلاثة في هجوم على حاجز أمني. وقالت الشرطة إن التحقيق جارٍ."
    dev = [Record("d1", text, labels=("attack",)), Record("d2", NEGATIVES[0], labels=())]
    train = [
        Record("d2", NEGATIVES[0], summary="ملخص"),  # a dev id (a summary pair of a labelled dev article)
        Record(
            "t1", "  قتل ثلاثــة في هجوم  على حاجز أمني.\nوقالت الشرطة إن التحقيق جار. "
        ),  # d1's text, refolded
        Record("t2", NEGATIVES[1], labels=()),
    ]
    with caplog.at_level(logging.WARNING):
        kept = drop_dev_overlap(train, dev)
    assert [r.id for r in kept] == ["t2"]
    assert any("dropped 2 training article(s)" in r.message and "d2, t1" in r.message for r in caplog.records)


def test_training_drops_dev_articles_and_records_how_many(
    encoder_dir: Path, train_file: Path, tmp_path: Path
) -> None:
    seeds = [json.loads(line) for line in train_file.read_text("utf-8").splitlines()[:2]]
    dev = write_jsonl(tmp_path / "dev.jsonl", seeds)  # two training articles, as a leaky split would hold
    args = ["--train", str(train_file), "--dev", str(dev), "--base-model", str(encoder_dir)]
    out = naba_train([*args, "--output", str(tmp_path / "m"), *TRAIN_ARGS, "--max_steps", "1"])
    config = read_config(out)
    assert config.training["train_articles"] == 15 and config.training["dev_articles_dropped_from_train"] == 2


def test_retraining_never_writes_into_the_served_artifact(model_dir: Path, train_file: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    with pytest.raises(ArtifactError, match="already exists"):
        naba_train(["--train", str(train_file), "--init-from", str(model_dir), "--output", str(model_dir)])
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before


def test_bad_training_data_fails_before_training_with_file_and_line(
    encoder_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "text": "نص", "labels": []}\n{"id": "b", "text": "  ", "labels": []}\n', "utf-8"
    )
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        naba_train(["--train", str(bad), "--base-model", str(encoder_dir), "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_fixed_label_set_rejects_unknown_labels(encoder_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": NEGATIVES[0], "labels": ["sports"]}])
    args = ["--train", str(data), "--base-model", str(encoder_dir), "--output", str(tmp_path / "o")]
    with pytest.raises(DataError, match="sports"):
        naba_train([*args, "--labels", "attack", "joint_operation"])


def test_training_without_labels_or_label_set_is_refused(encoder_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": NEGATIVES[0], "summary": "ملخص"}])
    with pytest.raises(ArtifactError, match="no labels"):
        naba_train(["--train", str(data), "--base-model", str(encoder_dir), "--output", str(tmp_path / "o")])


def test_output_may_be_in_a_directory_that_does_not_exist_yet(
    encoder_dir: Path, train_file: Path, tmp_path: Path
) -> None:
    output = tmp_path / "new" / "nested" / "model"
    args = ["--train", str(train_file), "--base-model", str(encoder_dir), "--output", str(output)]
    naba_train([*args, "--max-length", "64", "--window-overlap", "16", "--max_steps", "1"])
    assert (output / "naba_config.json").is_file()
    assert [p.name for p in output.parent.iterdir()] == ["model"]  # no work directory left behind


def test_training_arguments_can_come_from_one_json_file(
    encoder_dir: Path, train_file: Path, tmp_path: Path
) -> None:
    spec = {"train": [str(train_file)], "base_model": str(encoder_dir), "output": str(tmp_path / "m"),
            "max_length": 64, "window_overlap": 16, "max_steps": 1, "report_to": "none", "save_strategy": "no",
            "remove_unused_columns": False}  # fmt: skip
    path = tmp_path / "args.json"
    path.write_text(json.dumps(spec))
    out = naba_train([str(path)])
    assert read_config(out).training["max_length"] == 64


def test_quoted_evidence_becomes_sentence_targets(encoder_dir: Path) -> None:
    from transformers import AutoTokenizer

    from naba.models.encoding import WindowConfig
    from naba.models.preprocessing import PreprocessConfig
    from naba.models.records import Record
    from naba.training.examples import TrainingCollator, encode_records

    text = "هطلت أمطار غزيرة على المدينة. وقتل ثلاثة في هجوم مسلح على حاجز. وعادت الحياة إلى طبيعتها."
    records = [
        Record("a", text, labels=("attack",), evidence={"attack": "وقتل ثلاثة في هجوم مسلح"}),
        Record("b", text, labels=()),  # no label: every sentence is a negative for both labels
        Record("c", text, summary="هطلت أمطار غزيرة على المدينة."),  # unlabelled: no sentence targets
    ]
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    rows = list(
        encode_records(records, ["attack", "joint_operation"], tokenizer, PreprocessConfig(), WindowConfig(64, 16),
                       max_windows=4, oracle_sentences=3)
    )  # fmt: skip
    assert rows[0]["evidence"] == [[1], []]
    batch = TrainingCollator(tokenizer.pad_token_id, 64)(rows)
    targets, mask = batch["evidence_labels"], batch["evidence_mask"]
    assert targets[0, :, 0].tolist()[:3] == [0.0, 1.0, 0.0] and mask[0, :3, 0].tolist() == [
        False,
        True,
        False,
    ]
    assert mask[0, :3, 1].all() and not targets[0, :, 1].any()  # joint_operation absent: negatives
    assert mask[1, :3].all() and not targets[1].any()
    assert not mask[2].any()


def test_evidence_loss_trains_the_sentence_scores(
    encoder_dir: Path, train_file: Path, tmp_path: Path
) -> None:
    quote = "وقتل ثلاثة في هجوم مسلح على حاجز"
    text = f"هطلت أمطار غزيرة على المدينة. {quote}. وعادت الحياة إلى طبيعتها."
    rows = [
        {"id": f"e{i}", "text": text, "labels": ["attack"], "evidence": {"attack": quote}} for i in range(8)
    ]
    rows += [{"id": f"n{i}", "text": t, "labels": []} for i, t in enumerate(NEGATIVES)]
    data = write_jsonl(tmp_path / "evidence.jsonl", rows)
    args = ["--train", str(data), "--base-model", str(encoder_dir), *TRAIN_ARGS[:4], "--seed", "0",
            "--per_device_train_batch_size", "4", "--disable_tqdm", "true", "--learning_rate", "3e-3"]  # fmt: skip
    picked = {}
    for weight in ("0", "5"):
        out = naba_train(
            [
                *args,
                "--output",
                str(tmp_path / weight),
                "--num_train_epochs",
                "6",
                "--evidence-weight",
                weight,
            ]
        )
        predictor = Predictor.from_dir(out, device="cpu")
        encoded = predictor.encode(Article(text))
        [scores] = predictor.score([encoded])
        picked[weight] = scores.sentence_logits[:, 0]
    margin = {w: float(s[1] - max(s[0], s[2])) for w, s in picked.items()}
    assert margin["5"] > 0 and margin["5"] > margin["0"]  # the quoted sentence stands out once trained on


RULES_ARTICLE = Article(
    "قتل خمسة أشخاص في هجوم انتحاري استهدف سوقا شعبيا في بغداد. وقالت الشرطة إن التحقيقات جارية.",
    title="غرفة عمليات مشتركة",
)


def _retrain(init_from: Path, train: Path, output: Path, *extra: str) -> Path:
    """One step at learning rate 0 from `init_from`: every trained weight stays as it was."""
    args = ["--train", str(train), "--init-from", str(init_from), "--output", str(output)]
    tiny = [a for a in TRAIN_ARGS if a not in {"--learning_rate", "1e-3"}]
    return naba_train([*args, *tiny, "--learning_rate", "0", "--max_steps", "1", *extra])


def test_rule_features_model_records_them_and_its_tag_scores_read_them(rules_model_dir: Path) -> None:
    config = read_config(rules_model_dir)
    assert config.heads is not None and config.heads.rule_features == tuple(rule_feature_names())
    assert config.heads.rules_version == RULES_VERSION and config.training["rule_features"] is True
    assert f"Rule features: reads {len(rule_feature_names())} labelling functions" in (
        rules_model_dir / "README.md"
    ).read_text("utf-8")

    predictor = Predictor.from_dir(rules_model_dir, device="cpu")
    assert predictor.model.rule_head is not None
    weight = predictor.model.rule_head.weight.detach().numpy()  # (K, F), trained from zeros
    assert np.abs(weight).max() > 1e-4
    encoded = predictor.encode(RULES_ARTICLE)
    features = rule_features(RULES_ARTICLE.text, RULES_ARTICLE.title)
    assert encoded.rule_features == features and sum(features) >= 3
    [real] = predictor.score([encoded])
    [zero] = predictor.score([replace(encoded, rule_features=[0.0] * len(features))])
    shift = real.label_logits - zero.label_logits
    assert np.abs(shift).max() > 1e-4
    assert shift == pytest.approx(weight @ np.array(features, dtype=np.float32), abs=1e-5)
    # Only the article logits read the rules: sentence scores (evidence) and the summary do not move.
    assert np.array_equal(real.sentence_logits, zero.sentence_logits)
    assert np.array_equal(real.summary_logits, zero.summary_logits)


def test_retraining_keeps_rule_features_and_their_rows_when_labels_grow(
    rules_model_dir: Path, tmp_path: Path
) -> None:
    rows = [
        {"id": f"n{i}", "text": t, "labels": ["economy"] if "أسعار" in t else []}
        for i, t in enumerate(NEGATIVES)
    ]
    labels = ["--labels", "attack", "coordination_centre", "joint_operation", "economy"]  # old ones kept
    output = _retrain(
        rules_model_dir, write_jsonl(tmp_path / "new.jsonl", rows), tmp_path / "retrained", *labels
    )

    config = read_config(output)  # no --rule-features: the previous artifact's setting stays
    assert config.heads is not None and config.heads.rule_features == tuple(rule_feature_names())
    old = load_file(str(rules_model_dir / "model.safetensors"))["rule_head.weight"]
    grown = load_file(str(output / "model.safetensors"))["rule_head.weight"]
    assert grown.shape == (4, len(rule_feature_names()))
    assert (grown[:3] == old).all() and (grown[3] == 0).all()  # old rows kept; the new label starts at zero


def test_retraining_with_rule_features_adds_a_head_that_starts_from_the_text_model(
    model_dir: Path, train_file: Path, tmp_path: Path
) -> None:
    output = _retrain(model_dir, train_file, tmp_path / "with-rules", "--rule-features")

    before, after = Predictor.from_dir(model_dir, device="cpu"), Predictor.from_dir(output, device="cpu")
    assert before.model.rule_head is None
    assert after.model.heads.rule_features == tuple(rule_feature_names())
    [old] = before.score([before.encode(RULES_ARTICLE)])
    [new] = after.score([after.encode(RULES_ARTICLE)])
    assert new.label_logits == pytest.approx(old.label_logits, abs=1e-6)  # a zero head adds nothing yet


def test_a_new_rule_head_starts_at_the_weak_label_models_weights(encoder_dir: Path, train_file: Path) -> None:
    from transformers import AutoModel

    from naba.models.modeling import HeadConfig, NabaModel
    from naba.models.records import read_records
    from naba.models.rules import FUNCTIONS_BY_NAME
    from naba.training.train import rule_head_from_label_model
    from naba.training.weak import LabelModel

    names = tuple(rule_feature_names())
    labels = ["attack", "coordination_centre", "economy"]  # a label the rules do not know keeps a zero row
    heads = HeadConfig(num_labels=3, rule_features=names, rules_version=RULES_VERSION)
    model = NabaModel(AutoModel.from_pretrained(encoder_dir), heads)
    records = read_records([train_file])
    rule_head_from_label_model(model, labels, records)

    weight = model.rule_head.weight.detach().numpy()
    expected = LabelModel.fit(records)
    for j, name in enumerate(names):
        label = FUNCTIONS_BY_NAME[name].label
        for k, row_label in enumerate(labels):
            want = expected.weight(name) if row_label == label else 0.0
            assert weight[k, j] == pytest.approx(want, abs=1e-6), (name, row_label)
    assert np.abs(weight[0]).max() > 0.1 and not weight[2].any()


def test_a_lexical_model_stores_its_head_and_adds_its_logits_to_the_networks(
    lexical_model_dir: Path, model_dir: Path
) -> None:
    config = read_config(lexical_model_dir)
    assert len(config.lexical_weights) == 3 and config.training["lexical"] is True
    sums = json.loads((lexical_model_dir / "checksums.json").read_text("utf-8"))
    assert {"lexical.json", "lexical.safetensors"} <= set(sums)
    assert "Lexical head: TF-IDF" in (lexical_model_dir / "README.md").read_text("utf-8")
    assert "lexical_weights" not in json.loads(
        (model_dir / "naba_config.json").read_text("utf-8")
    )  # old Naba reads it

    predictor = Predictor.from_dir(lexical_model_dir, device="cpu")
    assert predictor.lexical is not None
    encoded = predictor.encode(RULES_ARTICLE)
    expected = predictor.lexical.logits([RULES_ARTICLE])[0]
    assert encoded.lexical_logits is not None and np.array_equal(encoded.lexical_logits, expected)
    [real] = predictor.score([encoded])
    [zero] = predictor.score([replace(encoded, lexical_logits=np.zeros_like(expected))])
    assert np.abs(expected).max() > 0.1 and real.lexical_logits is not None
    assert np.array_equal(real.lexical_logits, expected)
    weights = np.array(config.lexical_weights, dtype=np.float32)
    assert real.label_logits == pytest.approx(zero.label_logits + weights * expected, abs=1e-5)
    assert np.array_equal(
        real.sentence_logits, zero.sentence_logits
    )  # evidence and summary stay the network's
    # Calibration and thresholds were tuned on the summed logits: analyze serves them.
    [analysis] = predictor.analyze([RULES_ARTICLE])
    assert analysis.scores == pytest.approx(
        dict(zip(predictor.labels, real.label_probs.tolist(), strict=True))
    )

    plain = Predictor.from_dir(model_dir, device="cpu")
    with pytest.raises(NabaError, match="without lexical logits"):
        predictor.score([plain.encode(RULES_ARTICLE)])
    with pytest.raises(NabaError, match="lexical_weights"):
        Predictor(predictor.model, predictor.tokenizer, config, predictor.device)


def test_retraining_a_lexical_model_refits_its_head_on_the_new_labels(
    lexical_model_dir: Path, tmp_path: Path
) -> None:
    rows = [
        {"id": f"n{i}", "text": t, "labels": ["economy"] if "أسعار" in t else []}
        for i, t in enumerate(NEGATIVES)
    ]
    labels = ["--labels", "attack", "coordination_centre", "joint_operation", "economy"]
    output = _retrain(
        lexical_model_dir, write_jsonl(tmp_path / "new.jsonl", rows), tmp_path / "retrained", *labels
    )
    config = read_config(output)  # no --lexical: the previous artifact's setting stays
    assert len(config.lexical_weights) == 4
    predictor = Predictor.from_dir(output, device="cpu")
    assert predictor.lexical is not None and predictor.lexical.labels == config.labels
    economy = predictor.lexical.logits([Article(t) for t in NEGATIVES])[:, 3]
    assert economy.argmax() == next(i for i, t in enumerate(NEGATIVES) if "أسعار" in t)
    assert not predictor.lexical.weights[:3].any()  # the new data has no example of the old labels


def test_a_corrupt_lexical_head_is_refused_at_load(lexical_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(lexical_model_dir, tmp_path / "copy"))
    (copy / "lexical.json").write_text("{}", "utf-8")
    with pytest.raises(ArtifactError, match="checksum"):
        Predictor.from_dir(copy, device="cpu")


def test_a_model_with_rule_features_and_a_lexical_head_runs_the_rules_once(
    encoder_dir: Path, train_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["--train", str(train_file), "--dev", str(train_file), "--base-model", str(encoder_dir)]
    output = naba_train(
        [*args, "--output", str(tmp_path / "both"), *TRAIN_ARGS, "--rule-features", "--lexical"]
    )
    predictor = Predictor.from_dir(output, device="cpu")
    assert predictor.lexical is not None
    expected = predictor.lexical.logits([RULES_ARTICLE])[0]

    def run_again(*_args: object) -> None:
        raise AssertionError("the lexical head ran the rules the network's features already hold")

    monkeypatch.setattr("naba.models.lexical.rule_columns", run_again)
    encoded = predictor.encode(RULES_ARTICLE)
    assert encoded.rule_features is not None and encoded.lexical_logits is not None
    assert np.array_equal(encoded.lexical_logits, expected)
