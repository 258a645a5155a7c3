"""The lexical head: fitted on labelled articles, it scores their words; it survives a save and load exactly,
and a damaged or mismatched head is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from naba.models.errors import ArtifactError, DataError
from naba.models.lexical import LEXICAL_CONFIG, LEXICAL_WEIGHTS, LexicalHead, lexical_text
from naba.models.records import Record
from naba.models.results import Article
from naba.models.rules import rule_feature_names, rule_features
from naba.training.lexical import fit_lexical_head, fit_logistic
from tests.conftest import NEGATIVES, seed_records

LABELS = ["attack", "coordination_centre", "joint_operation"]


def _records() -> list[Record]:
    seeds = [Record(r["id"], r["text"], r.get("title"), tuple(r["labels"])) for r in seed_records()]
    negatives = [Record(f"neg-{i}", t, None, ()) for i, t in enumerate(NEGATIVES)]
    return seeds + negatives + [Record("unlabelled", NEGATIVES[0] * 3)]


@pytest.fixture(scope="module")
def head() -> LexicalHead:
    return fit_lexical_head(_records(), LABELS)


def test_the_head_learns_each_labels_words_from_the_labelled_articles(head: LexicalHead) -> None:
    records = _records()
    # Word 1-2-grams of the 11 labelled articles only (the unlabelled one is skipped), then one
    # column per labelling function of the guide.
    sizes = [len(v.vocabulary_) for v in head.vectorizers]
    assert head.rule_features == rule_feature_names()
    assert min(sizes) > 50 and head.n_features == sum(sizes) + len(rule_feature_names())
    assert [(v.analyzer, v.ngram_range) for v in head.vectorizers] == [("word", (1, 2))]
    logits = head.logits([r for r in records if r.labels is not None])
    truth = np.array(
        [[label in (r.labels or ()) for label in LABELS] for r in records if r.labels is not None]
    )
    for k in range(len(LABELS)):  # on the data it was fitted on, every positive outscores every negative
        assert logits[truth[:, k], k].min() > logits[~truth[:, k], k].max()


def test_the_rule_columns_are_the_guides_rule_features(head: LexicalHead) -> None:
    article = Article("قتل خمسة أشخاص في هجوم انتحاري استهدف سوقا شعبيا.", title="غرفة عمليات مشتركة")
    columns = head.features([article]).toarray()[0, -len(head.rule_features) :]
    assert columns.tolist() == rule_features(article.text, article.title) and columns.sum() >= 2


def test_the_head_reads_title_and_body_folded() -> None:
    article = Article("قال الجيشُ إن الهجومَ انتهى.", title="هجوم على مدينة")
    assert lexical_text(article) == "هجوم علي مدينه قال الجيش ان الهجوم انتهي."


def test_a_saved_head_loads_with_the_same_vocabulary_and_scores(head: LexicalHead, tmp_path: Path) -> None:
    head.save(tmp_path)
    loaded = LexicalHead.load(tmp_path, LABELS)
    for before, after in zip(head.vectorizers, loaded.vectorizers, strict=True):
        assert after.vocabulary_ == before.vocabulary_
    assert loaded.rule_features == head.rule_features
    articles = [Article(t) for t in NEGATIVES] + [Article(r["text"], r.get("title")) for r in seed_records()]
    assert np.array_equal(loaded.logits(articles), head.logits(articles))
    assert loaded.logits(articles).dtype == np.float32


def test_a_head_for_other_labels_or_of_another_format_is_refused(head: LexicalHead, tmp_path: Path) -> None:
    head.save(tmp_path)
    with pytest.raises(ArtifactError, match="labels"):
        LexicalHead.load(tmp_path, ["attack", "joint_operation"])
    config = json.loads((tmp_path / LEXICAL_CONFIG).read_text("utf-8"))
    (tmp_path / LEXICAL_CONFIG).write_text(json.dumps({**config, "format": 99}), "utf-8")
    with pytest.raises(ArtifactError, match="format 99"):
        LexicalHead.load(tmp_path, LABELS)
    renamed = [*config["rule_features"][:-1], "attack:renamed_rule"]
    (tmp_path / LEXICAL_CONFIG).write_text(json.dumps({**config, "rule_features": renamed}), "utf-8")
    with pytest.raises(ArtifactError, match="attack:renamed_rule"):
        LexicalHead.load(tmp_path, LABELS)


def test_weights_that_do_not_fit_the_vocabulary_are_refused(head: LexicalHead, tmp_path: Path) -> None:
    head.save(tmp_path)
    tensors = load_file(str(tmp_path / LEXICAL_WEIGHTS))
    save_file({**tensors, "idf_0": tensors["idf_0"][:-1]}, str(tmp_path / LEXICAL_WEIGHTS))
    with pytest.raises(ArtifactError, match="does not fit its vocabulary"):
        LexicalHead.load(tmp_path, LABELS)
    save_file({**tensors, "weights": tensors["weights"][:, :-1]}, str(tmp_path / LEXICAL_WEIGHTS))
    with pytest.raises(ArtifactError, match="do not fit"):
        LexicalHead.load(tmp_path, LABELS)
    (tmp_path / LEXICAL_WEIGHTS).unlink()
    with pytest.raises(ArtifactError, match="no readable lexical head"):
        LexicalHead.load(tmp_path, LABELS)


def test_a_label_without_positives_gets_a_zero_row() -> None:
    features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    truth = np.array([[1, 0], [0, 0], [1, 0]])
    weights, bias = fit_logistic(features, truth)
    assert weights[0, 0] > 0 > weights[0, 1]
    assert not weights[1].any() and bias[1] == 0  # never seen: adds nothing to the network's logit


def test_fitting_needs_labelled_articles_with_shared_ngrams() -> None:
    with pytest.raises(DataError, match="none has labels"):
        fit_lexical_head([Record("u", NEGATIVES[0])], LABELS)
    with pytest.raises(DataError, match="no n-gram"):
        fit_lexical_head([Record("a", "أ", None, ("attack",)), Record("b", "ب", None, ())], LABELS)


def test_rule_features_given_by_the_caller_score_as_computed_ones(head: LexicalHead) -> None:
    articles = [Article(r["text"], r.get("title")) for r in seed_records()] + [Article(NEGATIVES[0])]
    rules = np.array([rule_features(a.text, a.title, head.rule_features) for a in articles])
    assert np.array_equal(head.logits(articles, rules), head.logits(articles))
    with pytest.raises(ValueError, match="shape"):
        head.logits(articles, rules[:, :-1])
