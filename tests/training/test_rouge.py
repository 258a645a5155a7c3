"""Tests for training.rouge: the Arabic ROUGE tokenizer, mean ROUGE and greedy oracle labels."""

from __future__ import annotations

import itertools
import random

import pytest
from rouge_score.rouge_scorer import RougeScorer

from naba.models.preprocessing import split_sentences
from naba.training.rouge import ArabicTokenizer, _Oracle, oracle_indices, rouge

ARTICLE = (
    "أعلنت وزارة الصحة عن افتتاح مستشفى جديد في مدينة البصرة. "
    "وقالت قيادة العمليات المشتركة إن القوات الاتحادية والبيشمركة نفذت عملية أمنية مشتركة في كركوك. "
    "ويتوقع خبراء الأرصاد أمطارا غزيرة نهاية الأسبوع. "
    "وشارك في العملية أكثر من ألف مقاتل من الجانبين."
)


def test_tokenizer_keeps_arabic_and_folds_variants() -> None:
    tokens = ArabicTokenizer().tokenize("قالَ الرئيسُ: إنّ ٣ أشخاصٍ قُتلوا في الهجمـــة، حسب CNN.")
    assert tokens == ["قال", "الرئيس", "ان", "3", "اشخاص", "قتلوا", "في", "الهجمه", "حسب", "cnn"]


def test_tokenizer_keeps_the_definite_article() -> None:
    assert ArabicTokenizer().tokenize("المدينة مدينة") == ["المدينه", "مدينه"]


def test_stock_rouge_score_misses_arabic_but_ours_does_not() -> None:
    reference = "ذهب الولد الى المدرسة"
    prediction = "ذهب الولد إلى البيت"  # إلى folds to الى
    stock = RougeScorer(["rouge1", "rouge2", "rougeL"]).score(reference, prediction)
    assert all(score.fmeasure == 0.0 for score in stock.values())
    scores = rouge([prediction], [reference])
    assert scores == pytest.approx({"rouge1": 0.75, "rouge2": 2 / 3, "rougeL": 0.75})


def test_rouge_is_the_mean_over_pairs() -> None:
    scores = rouge(["ذهب الولد", "شيء آخر تماما"], ["ذهب الولد", "ذهب الولد"])
    assert scores == pytest.approx({"rouge1": 0.5, "rouge2": 0.5, "rougeL": 0.5})


def test_rouge_rejects_mismatched_or_empty_input() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        rouge(["أ", "ب"], ["أ"])
    with pytest.raises(ValueError, match="no predictions"):
        rouge([], [])


def _stock_scores(sentences: list[str], indices: list[int], reference: str) -> tuple[float, float]:
    scorer = RougeScorer(["rouge1", "rouge2"], tokenizer=ArabicTokenizer())
    scores = scorer.score(reference, " ".join(sentences[i] for i in sorted(indices)))
    return scores["rouge1"].fmeasure, scores["rouge2"].fmeasure


def test_counter_scores_equal_rouge_scorer_on_the_joined_selection() -> None:
    sentences = [*split_sentences(ARTICLE), "!!!"]  # the last sentence has no words
    reference = "نفذت القوات الاتحادية والبيشمركة عملية مشتركة في كركوك شارك فيها ألف مقاتل."
    oracle = _Oracle(sentences, reference)
    for size in (1, 2, 3):
        for indices in itertools.combinations(range(len(sentences)), size):
            assert oracle.scores(list(indices)) == _stock_scores(sentences, list(indices), reference)


def test_counter_scores_equal_rouge_scorer_on_random_text() -> None:
    rng = random.Random(0)
    vocabulary = ["قال", "الرئيس", "القوات", "في", "بغداد", "عملية", "مشتركة", "هجوم", "أمس", "٣"]
    for _ in range(50):
        sentences = [" ".join(rng.choices(vocabulary, k=rng.randint(0, 8))) for _ in range(5)]
        reference = " ".join(rng.choices(vocabulary, k=rng.randint(1, 10)))
        indices = rng.sample(range(5), rng.randint(1, 4))
        assert _Oracle(sentences, reference).scores(indices) == _stock_scores(sentences, indices, reference)


def test_oracle_picks_the_matching_sentence() -> None:
    sentences = split_sentences(ARTICLE)
    reference = "القوات الاتحادية والبيشمركة تنفذ عملية أمنية مشتركة في كركوك"
    assert oracle_indices(sentences, reference) == [1]


def test_oracle_combines_sentences_and_respects_the_limit() -> None:
    sentences = split_sentences(ARTICLE)
    reference = "افتتاح مستشفى جديد في البصرة، وأمطار غزيرة متوقعة نهاية الأسبوع"
    assert oracle_indices(sentences, reference) == [0, 2]
    assert len(oracle_indices(sentences, reference, max_sentences=1)) == 1


def test_oracle_on_empty_input() -> None:
    assert oracle_indices([], "ملخص") == []
    assert oracle_indices(["جملة ما"], "...") == []
    assert oracle_indices(["جملة ما"], "شيء آخر") == []
