"""Normalisation and sentence splitting: exact cases plus properties that must hold for any text."""

from __future__ import annotations

import json
import re
import unicodedata
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from naba.models.errors import EmptyInputError, InputTooLongError, InvalidInputError
from naba.models.preprocessing import (
    FOLD_ALL,
    PreprocessConfig,
    check_unicode,
    has_arabic,
    normalize,
    sentence_spans,
    split_sentences,
    truncate_text,
    validate_text,
    validate_title,
)

ARABIC_TEXT = st.text(
    alphabet=st.sampled_from(list('ابتثجحخدذرسشصضطظعغفقكلمنهويةىأإآءـًٌٍَُِّْ0123456789٠١٢ .,!?؟؛…\n\t"«»()')),
    max_size=300,
)


def test_normalize_removes_diacritics_and_tatweel() -> None:
    assert normalize("اَلْعَرَبِيَّةُ") == "العربية"
    assert normalize("جمـــيل") == "جميل"


def test_normalize_keeps_letter_variants_by_default_and_folds_when_asked() -> None:
    assert normalize("إلى مدرسة") == "إلى مدرسة"
    assert normalize("إلى مدرسة", FOLD_ALL) == "الي مدرسه"


def test_normalize_collapses_whitespace_and_invisible_characters() -> None:
    assert normalize("  بغداد\u200b \n\t  الموصل\ufeff ") == "بغداد الموصل"


def test_normalize_digits_only_when_asked() -> None:
    assert normalize("عام ٢٠١٥") == "عام ٢٠١٥"
    assert normalize("عام ٢٠١٥", PreprocessConfig(normalize_digits=True)) == "عام 2015"


@settings(max_examples=200, deadline=None)
@given(ARABIC_TEXT)
def test_normalize_is_idempotent(text: str) -> None:
    for config in (PreprocessConfig(), FOLD_ALL):
        once = normalize(text, config)
        assert normalize(once, config) == once


def test_config_round_trips_and_rejects_unknown_keys() -> None:
    config = PreprocessConfig(normalize_alef=True)
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown preprocessing settings"):
        PreprocessConfig.from_dict({"lowercase": True})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("قتل شخصان. وأصيب ثلاثة آخرون!", ["قتل شخصان.", "وأصيب ثلاثة آخرون!"]),
        ("هل انتهت العملية؟ نعم؛ انتهت", ["هل انتهت العملية؟", "نعم؛", "انتهت"]),
        (
            "ارتفعت النسبة إلى 3.5 بالمئة. وبلغ العدد 1.200 شخص.",
            ["ارتفعت النسبة إلى 3.5 بالمئة.", "وبلغ العدد 1.200 شخص."],
        ),
        ("قال د. محمد علي إن الوضع مستقر.", ["قال د. محمد علي إن الوضع مستقر."]),
        ("أعلنت قوات U.S. Army انسحابها. ثم عادت.", ["أعلنت قوات U.S. Army انسحابها.", "ثم عادت."]),
        ('وقال: "انتهت المعركة." ثم غادر.', ['وقال: "انتهت المعركة."', "ثم غادر."]),
        ("السطر الأول\nالسطر الثاني\n\n  السطر الثالث", ["السطر الأول", "السطر الثاني", "السطر الثالث"]),
        ("انتظروا... ثم بدأ الهجوم", ["انتظروا...", "ثم بدأ الهجوم"]),
        ("", []),
        ("   \n ", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_abbreviations_are_read_after_any_prefix_and_long_words_still_split() -> None:
    # The word before a period is found by stepping back to the previous space, whatever precedes it.
    prefix = "كلمة " * 20_000
    assert split_sentences(prefix + "قال د. محمد إن الوضع مستقر.") == [
        prefix.strip() + " قال د. محمد إن الوضع مستقر."
    ]
    long_word = "ب" * 500
    assert split_sentences(f"{long_word}. ثم عادت.") == [f"{long_word}.", "ثم عادت."]
    assert split_sentences("(«د. محمد»)") == ["(«د. محمد»)"]


def test_a_text_of_initials_only_is_one_sentence() -> None:
    # 100,000 characters with a period every three: once quadratic (tens of seconds), now one linear pass.
    text = "ا. " * 33_333
    assert sentence_spans(text) == [(0, len(text.rstrip()))]


@settings(max_examples=300, deadline=None)
@given(ARABIC_TEXT)
def test_sentence_spans_never_lose_or_reorder_text(text: str) -> None:
    spans = sentence_spans(text)
    assert all(a < b for a, b in spans)
    assert all(prev[1] <= nxt[0] for prev, nxt in pairwise(spans))
    assert all(text[a:b] == text[a:b].strip() for a, b in spans)
    # Every non-space character is in exactly one sentence, in order.
    joined = "".join(text[a:b] for a, b in spans)
    assert "".join(joined.split()) == "".join(text.split())


def test_has_arabic() -> None:
    assert has_arabic("Breaking: انفجار")
    assert not has_arabic("only English 123 !?")


def test_validate_text_errors() -> None:
    with pytest.raises(EmptyInputError):
        validate_text("  \n", max_chars=100)
    with pytest.raises(InputTooLongError, match="limit is 10"):
        validate_text("ب" * 11, max_chars=10)
    with pytest.raises(InvalidInputError, match="no Arabic"):
        validate_text("hello world", max_chars=100)
    validate_text("مرحبا", max_chars=100)
    with pytest.raises(InvalidInputError, match=r"lone UTF-16 surrogate \(U\+D83D\) at character 6"):
        validate_text(json.loads('"مرحبا \\ud83d"'), max_chars=100)  # half an emoji, as JSON may spell it


def test_validate_title_checks_length_and_unicode() -> None:
    validate_title(None, max_chars=5)
    validate_title("عنوان", max_chars=5)
    with pytest.raises(InputTooLongError, match=r"^title has 6 characters; the limit is 5 \(cut it\)$"):
        validate_title("عنوان!", max_chars=5, hint=" (cut it)")
    with pytest.raises(InvalidInputError, match=r"^title holds a lone UTF-16 surrogate"):
        validate_title(json.loads('"\\ud800"'), max_chars=5)


def test_check_unicode_refuses_lone_surrogates_and_takes_pairs() -> None:
    check_unicode(json.loads('"خبر \\ud83d\\ude00"'), "title")  # a whole pair decodes to one emoji
    with pytest.raises(
        InvalidInputError, match=r"^id holds a lone UTF-16 surrogate \(U\+DE00\) at character 2"
    ):
        check_unicode(json.loads('"ab\\ude00"'), "id")


@settings(max_examples=200, deadline=None)
@given(ARABIC_TEXT, st.integers(min_value=1, max_value=320))
def test_truncate_text_keeps_a_prefix_within_the_limit(text: str, max_chars: int) -> None:
    cut = truncate_text(text, max_chars, word_slack=20)
    assert len(cut) <= max_chars
    assert text.startswith(cut)  # never reorders or rewrites: a prefix of the text
    if len(text) <= max_chars:
        assert cut == text
        return
    window = range(max(0, max_chars - 20), max_chars)
    spaces = [i for i in window if text[i] in " \n\t"]
    if not spaces or spaces[-1] == 0:
        assert cut == text[:max_chars]  # no space near the limit: cut exactly there
    else:  # cut at the last space near the limit, so that no word is split in half
        assert cut == text[: spaces[-1]].rstrip()
        assert text[len(cut)].isspace()


def _fold_in_turn(text: str, config: PreprocessConfig) -> str:
    """normalize as a chain of one step per setting, the reference the one-table version must equal."""
    text = re.sub("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\x00-\x08\x0b-\x1f\x7f-\x9f]", " ",
                  unicodedata.normalize("NFKC", text))  # fmt: skip
    if config.remove_diacritics:
        text = re.sub("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]", "", text)
    if config.remove_tatweel:
        text = text.replace("\u0640", "")
    steps = [(config.normalize_alef, "أإآٱ", "اااا"), (config.normalize_yaa, "ى", "ي"),
             (config.normalize_taa_marbuta, "ة", "ه"),
             (config.normalize_digits, "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")]  # fmt: skip
    for wanted, source, target in steps:
        if wanted:
            text = text.translate(str.maketrans(source, target))
    return re.sub(r"\s+", " ", text).strip()


@given(ARABIC_TEXT | st.text(alphabet="أإآٱىةـ٠١٩۰۹ًٌٍَُِّْ abc\u200b\t", max_size=60), st.booleans(), st.booleans())
def test_one_table_folds_as_the_steps_in_turn(text: str, letters: bool, digits: bool) -> None:
    config = PreprocessConfig(normalize_alef=letters, normalize_yaa=letters, normalize_taa_marbuta=letters,
                              normalize_digits=digits)  # fmt: skip
    for chosen in (config, FOLD_ALL, PreprocessConfig()):
        assert normalize(text, chosen) == _fold_in_turn(text, chosen)
