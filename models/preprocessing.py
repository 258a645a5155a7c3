"""Arabic text preprocessing: normalisation, sentence splitting and input checks.

Everything here is a pure function of its input and a `PreprocessConfig`. The config is saved in every model
artifact, so training and serving normalise text the same way. Sentence splitting works on the *original*
text and returns character spans: evidence and summaries quote the article exactly, while the model sees the
normalised form of the same sentences.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import asdict, dataclass, fields
from typing import Any

from naba.models.errors import EmptyInputError, InputTooLongError, InvalidInputError

PREPROCESSING_VERSION = 1

# Harakat, tanween, shadda, sukun, superscript alef and Quranic marks.
_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
_TATWEEL = "\u0640"
# Zero-width and bidi control characters, the byte-order mark and C0/C1 controls other than tab/newline.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\x00-\x08\x0b-\x1f\x7f-\x9f]")
_WHITESPACE = re.compile(r"\s+")
_ALEF = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا"})
_YAA = str.maketrans({"ى": "ي"})
_TAA_MARBUTA = str.maketrans({"ة": "ه"})
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
# Lone UTF-16 surrogates: decodable from JSON escapes, but not text (see `check_unicode`).
_SURROGATE = re.compile("[\ud800-\udfff]")
_ARABIC_LETTER = re.compile("[\u0621-\u063a\u0641-\u064a\u0671-\u06d3\u06fa-\u06fc]")


@dataclass(frozen=True)
class PreprocessConfig:
    """How article text is normalised before tokenisation.

    The defaults suit AraBERT v0.2 and models trained by Naba: diacritics and tatweel go (the vocabulary has
    none), letter variants stay (the vocabulary distinguishes them). Fold letters for models trained that way.
    """

    version: int = PREPROCESSING_VERSION
    remove_diacritics: bool = True
    remove_tatweel: bool = True
    normalize_alef: bool = False
    normalize_yaa: bool = False
    normalize_taa_marbuta: bool = False
    normalize_digits: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown preprocessing settings: {sorted(unknown)}")
        return cls(**data)


# Full folding, used to compare texts (ROUGE, evidence matching), never to feed a model.
FOLD_ALL = PreprocessConfig(
    normalize_alef=True, normalize_yaa=True, normalize_taa_marbuta=True, normalize_digits=True
)


def normalize(text: str, config: PreprocessConfig = PreprocessConfig()) -> str:
    """Return `text` normalised by `config`; idempotent: normalize(normalize(t)) == normalize(t)."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub(" ", text)
    if config.remove_diacritics:
        text = _DIACRITICS.sub("", text)
    return _WHITESPACE.sub(" ", text.translate(_folding_table(config))).strip()


@functools.cache
def _folding_table(config: PreprocessConfig) -> dict[int, Any]:
    """The tatweel removal and letter and digit foldings `config` asks for, as one `str.translate` table: one
    pass over the text instead of one per folding. They touch disjoint characters, and none maps to a
    character another one changes, so applying them together is applying them in turn."""
    table: dict[int, Any] = {}
    if config.remove_tatweel:
        table[ord(_TATWEEL)] = None
    foldings: list[tuple[bool, dict[int, Any]]] = [
        (config.normalize_alef, _ALEF),
        (config.normalize_yaa, _YAA),
        (config.normalize_taa_marbuta, _TAA_MARBUTA),
        (config.normalize_digits, _DIGITS),
    ]
    for wanted, folding in foldings:
        if wanted:
            table.update(folding)
    return table


def text_key(text: str) -> str:
    """An article's text as compared across files and stores: Unicode forms, invisible characters, diacritics,
    tatweel, letter and digit variants and whitespace folded (`normalize` with `FOLD_ALL`). Two texts with
    one key are one article: a dev article copied into training, two corrections of one article."""
    return normalize(text, FOLD_ALL)


def has_arabic(text: str) -> bool:
    """True when `text` holds at least one Arabic letter."""
    return _ARABIC_LETTER.search(text) is not None


# --- sentence splitting -------------------------------------------------------------------------------------

_TERMINATORS = ".!?؟؛…"
_CLOSERS = "\"'»”’)]}›"
# A terminator run, then any closing quotes or brackets, then whitespace or the end of the text.
_BOUNDARY = re.compile(rf"[{re.escape(_TERMINATORS)}]+[{re.escape(_CLOSERS)}]*(?=\s|$)")
_LINE_BREAK = re.compile(r"\n\s*")
# Abbreviations that end in a period but do not end a sentence (Arabic and English), matched case-blind.
ABBREVIATIONS = frozenset(
    {
        "ص.ب",
        "ق.م",
        "ت",
        "د",
        "م",
        "ه",
        "هـ",
        "أ",
        "ج",
        "ش",
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "no",
        "vs",
        "etc",
        "inc",
        "ltd",
        "jr",
        "sr",
        "gen",
        "col",
        "lt",
        "sgt",
        "u.s",
        "u.n",
        "u.k",
        "e.g",
        "i.e",
    }
)


def _is_abbreviation(text: str, period_at: int) -> bool:
    """True when the period at `period_at` closes an abbreviation or an initial rather than a sentence.

    The word before the period is found by stepping back to the previous whitespace, so each character is read
    once per split. (A regex search for `\\S+$` from the start of the text read the whole prefix at every
    period: 40,000 characters of "ا. " took 4 s to split, the service's 100,000-character limit about 25 s.)
    """
    start = period_at
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:period_at].lstrip("(\"'«“").lower()
    return (len(word) == 1 and word.isalpha()) or word in ABBREVIATIONS


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Split `text` into sentences and return their `(start, end)` character spans in the original text.

    Sentences end at `.`, `!`, `?`, `؟`, `؛` or `…` followed by whitespace (closing quotes and brackets stay
    with their sentence), and at line breaks. Decimal points and thousands separators never split (no
    whitespace follows them), nor do periods after an initial or a known abbreviation. Spans are stripped of
    surrounding whitespace, in order, never overlap, and together hold every non-space character.
    """
    cuts: set[int] = {m.end() for m in _LINE_BREAK.finditer(text)}
    for m in _BOUNDARY.finditer(text):
        run = m.group(0)
        if run.rstrip(_CLOSERS) == "." and _is_abbreviation(text, m.start()):
            continue
        cuts.add(m.end())
    spans: list[tuple[int, int]] = []
    start = 0
    for cut in [*sorted(cuts), len(text)]:
        if cut <= start:
            continue
        piece = text[start:cut]
        stripped = piece.strip()
        if stripped:
            left = start + (len(piece) - len(piece.lstrip()))
            spans.append((left, left + len(stripped)))
        start = cut
    return spans


def split_sentences(text: str) -> list[str]:
    """Split `text` into sentences; see `sentence_spans`."""
    return [text[a:b] for a, b in sentence_spans(text)]


def truncate_text(text: str, max_chars: int, word_slack: int = 200) -> str:
    """`text` cut to at most `max_chars` characters, at the last whitespace of the final `word_slack` characters
    when there is one, so that the last word is not cut in half; unchanged when it already fits."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = max(cut.rfind(c, max(0, max_chars - word_slack)) for c in " \n\t")
    return cut[:space].rstrip() if space > 0 else cut


def check_unicode(value: str, field: str) -> None:
    """Raise `InvalidInputError` when `value` is not valid Unicode text.

    JSON may spell a lone UTF-16 surrogate (`"\\ud800"`), and Python decodes it into a `str` that no tokenizer
    takes and no UTF-8 writer can write: refusing it here gives the caller a clear error instead of a crash
    deep inside the model or the output file.
    """
    match = _SURROGATE.search(value)
    if match:
        raise InvalidInputError(
            f"{field} holds a lone UTF-16 surrogate (U+{ord(match.group()):04X}) at character {match.start()}: "
            "it is not valid Unicode text"
        )


def validate_text(text: str, max_chars: int) -> None:
    """Raise a typed error when `text` cannot be analysed: empty, too long, not valid Unicode, or without
    Arabic letters."""
    if not text or not text.strip():
        raise EmptyInputError("text is empty: send the article's text in 'text'")
    if len(text) > max_chars:
        raise InputTooLongError(f"text has {len(text)} characters; the limit is {max_chars}")
    check_unicode(text, "text")
    if not has_arabic(text):
        raise InvalidInputError("text holds no Arabic letters: Naba analyses Arabic articles")


def validate_title(title: str | None, max_chars: int, hint: str = "") -> None:
    """Raise a typed error when an article's title cannot be analysed: not valid Unicode, or longer than
    `max_chars` (`hint`, appended to that message, says how the caller can get round it)."""
    if title is None:
        return
    check_unicode(title, "title")
    if len(title) > max_chars:
        raise InputTooLongError(f"title has {len(title)} characters; the limit is {max_chars}{hint}")
