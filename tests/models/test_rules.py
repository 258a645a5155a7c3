"""`naba.models.rules`: the guide's labelling functions, their votes, and the rule features a model reads."""

from __future__ import annotations

import hashlib
import json

import pytest

from naba.models.records import Record
from naba.models.results import Article
from naba.models.rules import (
    AT,
    CC,
    JO,
    LABELLING_FUNCTIONS,
    LABELS,
    MAX_WORD_CHARS,
    POSITIVE,
    RULES_VERSION,
    LabellingFunction,
    article_votes,
    fired_functions,
    fold,
    no_positive_name,
    positive_votes,
    rule_feature_names,
    rule_features,
    sentence_votes,
)
from tests.conftest import NEGATIVES

# (label, function that must fire, a sentence from the guide's examples, a near miss the guide excludes)
GUIDE_EXAMPLES = [
    (
        CC,
        "cc_joint_centre",
        "افتتاح مركز مشترك للتنسيق بين البيشمركة والجيش العراقي",
        "وأكد الجانبان أهمية التنسيق بين البلدين في مكافحة الإرهاب",  # coordination in the abstract
    ),
    (
        CC,
        "cc_joint_operations_room",
        "وأعلن الطرفان تشكيل غرفة عمليات مشتركة مع التحالف الدولي",
        "وقال المتحدث باسم قيادة العمليات المشتركة إن القوات تقدمت",  # the command only as a source
    ),
    (
        CC,
        "cc_armed_operations_room",
        "وأعلنت غرفة عمليات فتح حلب التي تضم فصائل المعارضة بدء المعركة",
        "وتلقت غرفة عمليات الهلال الأحمر بلاغا عن حادث سير",  # a civil operations room
    ),
    (
        JO,
        "jo_joint_operation",
        "تنفيذ عملية مشتركة بين قوات البيشمركة وقوات الجيش العراقي، بإسناد التحالف الدولي",
        "واختتمت تمارين عسكرية مشتركة بين الجيشين",  # joint exercises
    ),
    (
        JO,
        "jo_participation",
        "انطلقت العملية بمشاركة الجيش والشرطة الاتحادية والحشد الشعبي",
        "وبحث الوزيران سبل التعاون السياسي والاقتصادي بين البلدين",  # political cooperation
    ),
    (
        JO,
        "jo_air_support",
        "وسيطر الجيش الوطني بإسناد من طيران التحالف على مركز المديرية",
        "وقالت قيادة العمليات المشتركة إنها تتابع الوضع",  # the command is not an operation
    ),
    (
        AT,
        "at_suicide",
        "هجوم انتحاري يستهدف نقطة تفتيش في بغداد",
        "وتعمل الحكومة على منع الهجمات الإرهابية",  # a generic threat
    ),
    (
        AT,
        "at_foiled",
        "أحبطت القوات الأمنية هجوما على مركز للشرطة",
        "وسجل المهاجم هدفا بعد هجوم سريع في المباراة",  # a football attack
    ),
    (
        AT,
        "at_attack_event",
        "تصاعدت وتيرة الهجمات التي يشنها عناصر تنظيم داعش ما تسبب بوقوع العديد من الضحايا",
        "وشنت طائرات التحالف غارات على مواقع داعش",  # strikes by state forces on militants
    ),
]


# Articles that make functions of every label fire, in the title and in the body, and some that make none.
ARTICLES = [
    Article(
        "قتل خمسة أشخاص في هجوم انتحاري استهدف سوقا شعبيا في بغداد. وقالت الشرطة إن التحقيقات جارية.",
        title="غرفة عمليات مشتركة",
    ),
    Article(
        "أعلنت القيادة انطلاق عملية مشتركة بين قوات البيشمركة والجيش العراقي بإسناد من طيران التحالف الدولي. "
        "واختتمت تمارين عسكرية مشتركة بين الجيشين."
    ),
    Article(NEGATIVES[0], title="هجوم انتحاري"),  # the body has a football "attack"; the title a real one
    *[Article(text) for text in NEGATIVES[1:]],
]

# RULES_VERSION -> fingerprint of the table it names (`_table_fingerprint`).
TABLE_FINGERPRINTS = {"1": "458f0541bddbbe7cb7af861e91abb9bf50295231cd2dd1591946f4619c418d95"}


def _fired(article: Article) -> set[str]:
    """The functions `fired_functions` lists for any label, without the implicit no-positive votes."""
    votes = article_votes(article)
    implicit = {no_positive_name(label) for label in LABELS}
    return {name for label in LABELS for name in fired_functions(votes, label)} - implicit


def _table_fingerprint() -> str:
    """What decides each function's vote, after folding: names, labels, votes, compiled patterns, masking and
    yielding (not the priors, which only the label model reads)."""
    table = [
        [lf.name, lf.label, lf.vote, lf.regex.pattern, lf.masks, list(lf.yields_to),
         lf.requires_regex.pattern if lf.requires_regex else None,
         lf.unless_regex.pattern if lf.unless_regex else None]
        for lf in LABELLING_FUNCTIONS
    ]  # fmt: skip
    return hashlib.sha256(json.dumps(table, ensure_ascii=False).encode()).hexdigest()


def test_rule_features_follow_the_table_order_and_match_fired_functions() -> None:
    names = rule_feature_names()
    assert names == [lf.name for lf in LABELLING_FUNCTIONS] and len(set(names)) == len(names)
    for article in ARTICLES:
        features = rule_features(article.text, article.title)
        assert features == [float(name in _fired(article)) for name in names]
        assert rule_features(article.text, article.title, names[::-1]) == features[::-1]
    first = dict(zip(names, rule_features(ARTICLES[0].text, ARTICLES[0].title), strict=True))
    assert first["cc_joint_operations_room"] == 1.0  # from the title
    assert first["at_suicide"] == first["at_attack_event"] == 1.0  # from the body
    assert first["at_attack_word"] == 0.0  # yields to at_attack_event: silent
    second = dict(zip(names, rule_features(ARTICLES[1].text), strict=True))
    assert second["jo_joint_operation"] == second["jo_exercise"] == 1.0  # negative votes are features too
    assert sum(rule_features(NEGATIVES[1])) == 0.0


def test_rule_features_refuse_unknown_names() -> None:
    with pytest.raises(KeyError, match="cc_retired"):
        rule_features("نص", names=["at_suicide", "cc_retired"])


def test_article_votes_read_an_article_a_record_or_a_text_and_title() -> None:
    text, title = ARTICLES[0].text, ARTICLES[0].title
    expected = article_votes(text, title)
    assert expected[0].span is None and len(expected) == 3  # the title, then two body sentences
    assert article_votes(ARTICLES[0]) == expected
    assert article_votes(Record("r", text, title)) == expected
    with pytest.raises(TypeError, match="title"):
        article_votes(ARTICLES[0], title)


def test_rules_version_names_one_table() -> None:
    """A model stores the rules version its features were computed with: a table change must bump it."""
    assert _table_fingerprint() == TABLE_FINGERPRINTS.get(RULES_VERSION), (
        "LABELLING_FUNCTIONS changed: bump RULES_VERSION in models/rules.py and record the new fingerprint in "
        f"TABLE_FINGERPRINTS: {_table_fingerprint()}"
    )


def _positive_names(sentence: str, label: str) -> set[str]:
    return {lf.name for lf in sentence_votes(sentence)[label] if lf.vote == POSITIVE}


@pytest.mark.parametrize(("label", "name", "example", "near_miss"), GUIDE_EXAMPLES)
def test_functions_fire_on_guide_examples_and_not_on_near_misses(
    label: str, name: str, example: str, near_miss: str
) -> None:
    assert name in _positive_names(example, label)
    assert _positive_names(near_miss, label) == set()


def test_generic_coordination_votes_against_coordination_centre() -> None:
    votes = sentence_votes("وأكد الجانبان أهمية التنسيق بين البلدين")[CC]
    assert [lf.name for lf in votes] == ["cc_generic_coordination"]


def test_a_masking_exclusion_cancels_positive_votes_in_its_sentence_only() -> None:
    text = "وسجل المهاجم هدفا بعد هجوم سريع في المباراة. وقتل جندي في هجوم شنه مسلحون على حاجز."
    first, second = article_votes(text)
    assert [lf.name for lf in first.votes[AT]] == ["at_not_violent"]
    assert "at_attack_event" in {lf.name for lf in second.votes[AT]}


def test_positive_votes_count_a_labels_positive_functions_per_sentence() -> None:
    sentences = [
        "وأكد الجانبان أهمية التنسيق بين البلدين",  # only a negative function votes
        "وشن مسلحون هجوما على حاجز للجيش",
        "وسجل المهاجم هدفا بعد هجوم سريع في المباراة",  # masked: the exclusion cancels the positive vote
    ]
    counts = positive_votes(sentences, AT)
    assert counts == [len(_positive_names(s, AT)) for s in sentences]
    assert counts[0] == 0 and counts[1] >= 1 and counts[2] == 0
    assert positive_votes(["تشكيل غرفه عمليــات مُشتركه"], CC) == [
        len(_positive_names("تشكيل غرفه عمليــات مُشتركه", CC))
    ]
    assert positive_votes(sentences, "label_the_guide_has_no_rules_for") == [0, 0, 0]


def test_a_general_function_yields_to_a_specific_one_in_the_same_sentence() -> None:
    names = _positive_names("وشن مسلحون هجوما على حاجز للجيش", AT)
    assert "at_attack_event" in names and "at_attack_word" not in names


def test_folding_matches_spelling_variants() -> None:
    # taa marbuta written as haa, alef without hamza, tatweel and diacritics
    assert "cc_joint_operations_room" in _positive_names("تشكيل غرفه عمليــات مُشتركه", CC)
    assert "jo_air_support" in _positive_names("تقدم الجيش باسناد من التحالف", JO)


def test_labelling_function_rejects_a_masking_positive() -> None:
    with pytest.raises(ValueError, match="only a negative function can mask"):
        LabellingFunction("bad", AT, POSITIVE, "هجوم", masks=True)


def test_fold_cuts_only_runs_longer_than_any_word() -> None:
    url = "https://example.com/" + "a" * 200
    assert fold(f"شن مسلحون هجوما {url}") == f"شن مسلحون هجوما {url[:MAX_WORD_CHARS]}"
    assert fold("تشكيل غرفه عمليــات مُشتركه") == "تشكيل غرفه عمليات مشتركه"


def test_a_sentence_without_spaces_gets_the_votes_of_its_first_characters() -> None:
    # "هجومهجوم..." for 100,000 characters: every function reads the run cut to MAX_WORD_CHARS characters,
    # where matching it whole read it once per occurrence (seconds per function).
    run = "هجوم" * 25_000
    assert sentence_votes(run) == sentence_votes(run[:MAX_WORD_CHARS])
    assert rule_features(run) == rule_features(run[:MAX_WORD_CHARS])
    assert "at_attack_event" in _positive_names(f"شن مسلحون هجوما على حاجز {run}", AT)
