"""`naba weak-label`: weak supervision from the annotation guide, for the unlabelled corpus.

Three steps, each a plain function of its input:

1. **Labelling functions** (`LABELLING_FUNCTIONS`): named regular expressions written from LABELS.md, matched
   on each *sentence* of an article after full folding (`normalize(text, FOLD_ALL)`: alef, yaa and taa marbuta
   variants merged, diacritics and tatweel gone). A function votes for its label (+1) or against it (-1), or
   abstains. A positive vote names its sentence, which can become the evidence quote. Two rules act within a
   sentence: a negative function that `masks` is one of the guide's exclusions ("joint exercises", "the
   spokesman of the Joint Operations Command said") and cancels its label's positive votes in that sentence;
   a function that `yields_to` a more specific one (a bare "هجوم" to "شن هجوما") is silent where that one
   fires, so one phrase is not counted twice.
2. **Label model** (`LabelModel`): a naive-Bayes weighted vote, as in Snorkel. An article's vote from a
   function is its vote in any sentence; one implicit function per label, `<label>:no_positive`, votes
   against the label when none of its positive functions fired. Each function j has an accuracy a_j, the
   share of its votes that are right, estimated on labelled training articles with its hand-set `prior` as
   pseudo-counts: a_j = (right_j + m * prior_j) / (votes_j + m). A vote's weight is the log-likelihood ratio
   it carries beyond the label's base rate b (the training share of articles with the label):
   w_j = logit(q_j) - logit(b), with q_j = a_j for a positive vote and 1 - a_j for a negative one, clamped
   so that no function argues against its own direction. Then logit P(label) = logit(b) + sum_j w_j over the
   functions that voted: one vote alone gives P = q_j, agreeing votes add up, conflicting votes cancel. A
   label is decided when max(P, 1 - P) reaches the confidence threshold; otherwise the model abstains on it.
   Without labelled data every function keeps its prior and b = 1/2: a plain accuracy-weighted vote.
3. **Output** (`weak_label`): every corpus article whose three labels are all decided becomes one record in
   the labelled format `naba train` reads, with the verbatim evidence sentence of each positive label (the
   body sentence whose positive votes weigh most) and, in a `weak` field that `training.data` ignores, the
   confidence of each decision. Articles of the labelled files (training, dev, hold-out) are never emitted,
   so no dev article leaks into training and no training article appears twice.

`evaluate` measures it on labelled data: each function's coverage and precision, and the combined labeller's
coverage, precision, recall and F1 per label, on the articles it decides and overall.

    naba weak-label --corpus ant_multisource.jsonl.gz ant_jawhara.jsonl.gz --output weak.jsonl
    naba weak-label --evaluate ../shared/data/labelled/dev.jsonl          # measure only
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from models.errors import DataError
from models.preprocessing import FOLD_ALL, normalize, sentence_spans
from training.data import Record, iter_rows, read_records
from training.metrics import classification_report

logger = logging.getLogger(__name__)

CC, JO, AT = "coordination_centre", "joint_operation", "attack"
LABELS = (CC, JO, AT)
POSITIVE, NEGATIVE = 1, -1
DEFAULT_MIN_CONFIDENCE = 0.9
PRIOR_STRENGTH = 2.0  # m: pseudo-votes behind each function's hand-set prior accuracy
NO_POSITIVE_PRIOR = 0.85  # prior accuracy of each label's implicit "no positive function fired" vote
# Corpus rows carry a `corpus` field, but `training.data.Record` does not keep it, so corpora are told apart
# by their id prefixes (see ../shared/data/README.md).
CORPUS_ID_PREFIXES = {
    "saudinewsnet": ("SNN-",),
    "ant_jawhara": ("JA-",),
    "ant_multisource": ("AL-", "BB-", "CN-", "FR-", "SK-"),
}
_GAP = r"(?:\S+ ){0,4}"  # what "… " stands for in a pattern: up to four words, then the next one


@dataclass(frozen=True)
class LabellingFunction:
    """One named pattern that votes on one label, sentence by sentence.

    Patterns are written in plain Arabic and folded here exactly as sentences are, so "غرفة" in a pattern
    matches "غرفه", "غرفة" and "غرفـة" alike and "إطلاق" matches "اطلاق"; "… " stands for up to four words.

    Attributes:
        name: unique, prefixed by the label ("cc_", "jo_", "at_").
        label: the label it votes on.
        vote: POSITIVE or NEGATIVE.
        pattern: the regular expression a sentence must match.
        requires: a regular expression that must also be found somewhere in the same sentence.
        unless: a regular expression that, found anywhere in the same sentence, stops the vote.
        masks: negative functions only: also cancel the label's positive votes in the same sentence.
        yields_to: names of more specific functions; where one of them fires, this one is silent.
        prior: the accuracy assumed before any labelled data is seen.
    """

    name: str
    label: str
    vote: int
    pattern: str
    requires: str | None = None
    unless: str | None = None
    masks: bool = False
    yields_to: tuple[str, ...] = ()
    prior: float = 0.75
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    requires_regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    unless_regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.label not in LABELS or self.vote not in (POSITIVE, NEGATIVE):
            raise ValueError(f"{self.name}: bad label {self.label!r} or vote {self.vote!r}")
        if self.masks and self.vote != NEGATIVE:
            raise ValueError(f"{self.name}: only a negative function can mask")
        if not 0.0 < self.prior < 1.0:
            raise ValueError(f"{self.name}: prior must be in (0, 1)")
        object.__setattr__(self, "regex", _compile(self.pattern))
        object.__setattr__(self, "requires_regex", _compile(self.requires) if self.requires else None)
        object.__setattr__(self, "unless_regex", _compile(self.unless) if self.unless else None)

    def fires(self, folded: str) -> bool:
        """Whether it votes on one folded sentence (before masking and `yields_to`)."""
        if self.regex.search(folded) is None:
            return False
        if self.requires_regex is not None and self.requires_regex.search(folded) is None:
            return False
        return self.unless_regex is None or self.unless_regex.search(folded) is None


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(normalize(pattern.replace("… ", _GAP), FOLD_ALL))


def _lf(name: str, label: str, vote: int, pattern: str, **options: Any) -> LabellingFunction:
    return LabellingFunction(name, label, vote, pattern, **options)


# Phrases used by several patterns (folding makes hamza, yaa and taa marbuta variants match).
_JOINT = r"(ال)?(مشترك|موحد)"
_JOINT_COMMAND = r"قياد(ة|ات)? (ال)?(عمليات|قوات) (ال)?مشترك"
_OPERATIONS_ROOM = r"غرف(ة|ت)? (ال)?عمليات"
# "the joint operations room / command / centre" names a body (coordination_centre), not an operation.
_NOT_A_BODY = r"(?<!غرفة )(?<!غرف )(?<!قيادة )(?<!مركز )(?<!مراكز )"
_MILITARY = r"عسكري|جيش|التحالف|فصائل|المعارضة|الثوار|معرك|القتال|هجوم|مقاتل|القوات|ألوية|الأمني|قيادة|حرب"
_FORCE = (
    r"(قوات|الجيش|جيش|الشرطة|الحشد|البيشمركة|المقاومة|ألوية|فصائل|وحدات|قطعات|الحرس|عناصر|مقاتلي|العشائر)"
)
_ATTACK_NOUN = r"(هجوم|هجمات|هجومين|اعتداء|اعتداءات)"
_MILITANTS = (
    r"(داعش|الدولة الإسلامية|القاعدة|الحوثي|ميليشي|مليشي|المتمردين|الإرهابيين|طالبان|الشباب|المسلحين|مسلحي|"
    r"بوكو حرام|النصرة|التنظيم|الانقلابيين)"
)

LABELLING_FUNCTIONS: tuple[LabellingFunction, ...] = (
    # --- coordination_centre ----------------------------------------------------------------------------
    # Guide: "a joint coordination body for security or military purposes ...: a coordination centre, joint
    # operations room, coordination cell, joint command room or intelligence-sharing centre. Its
    # establishment, opening, planning, meetings, work or role all count."
    _lf(
        "cc_joint_centre",
        CC,
        POSITIVE,
        rf"مراكز? (ال)?(عمليات|قيادة|تنسيق) (\S+ ){{0,6}}{_JOINT}|مركز {_JOINT}",
    ),
    _lf(
        "cc_coordination_centre",
        CC,
        POSITIVE,
        r"مراكز? (ال)?تنسيق",
        yields_to=("cc_joint_centre",),
        prior=0.6,
    ),
    _lf("cc_joint_operations_room", CC, POSITIVE, rf"{_OPERATIONS_ROOM} (\S+ ){{0,2}}{_JOINT}", prior=0.85),
    # Guide (hard cases): "a joint operations room of several armed groups is" coordination_centre.
    _lf(
        "cc_armed_operations_room",
        CC,
        POSITIVE,
        _OPERATIONS_ROOM,
        requires=_MILITARY,
        yields_to=("cc_joint_operations_room",),
        prior=0.7,
    ),
    _lf(
        "cc_operations_room",
        CC,
        POSITIVE,
        _OPERATIONS_ROOM,
        yields_to=("cc_joint_operations_room", "cc_armed_operations_room"),
        prior=0.4,
    ),
    _lf("cc_coordination_cell", CC, POSITIVE, rf"خلي(ة|ات) (ال)?تنسيق|خلي(ة|ات) (ال)?عمليات (\S+ )?{_JOINT}"),
    _lf(
        "cc_intelligence_sharing",
        CC,
        POSITIVE,
        r"(مركز|مراكز|غرفة|خلية) … (لتبادل|تبادل|لتقاسم) (ال)?معلومات",
    ),
    # Guide (hard cases): standing joint commands count "when the article reports their coordination work —
    # a meeting held there, coordinating or supervising an operation of several forces, their role".
    _lf(
        "cc_joint_command_at_work",
        CC,
        POSITIVE,
        rf"(إشراف|تنسيق|إدارة|خطة|اجتماع|اجتمع|مقر|زيارة|زار) (من |في |ب|مع )?(\S+ ){{0,3}}(ب|ل)?{_JOINT_COMMAND}|"
        rf"{_JOINT_COMMAND}\S* (\S+ ){{0,2}}(أشرفت|تشرف|نسقت|تنسق|استكملت|وضعت|أعدت|اجتماع|خطة|تواصل|تتابع)",
        prior=0.8,
    ),
    _lf("cc_joint_command", CC, POSITIVE, _JOINT_COMMAND, yields_to=("cc_joint_command_at_work",), prior=0.5),
    # Guide: "... and not when they are only quoted as a source ('the spokesman of the Joint Operations
    # Command said ...')".
    _lf(
        "cc_command_as_source",
        CC,
        NEGATIVE,
        rf"(المتحدث|الناطق|متحدث|ناطق|بيان|بلاغ|إعلام|الإعلام|الإعلامي)( الرسمي)? (باسم |عن |ل|صادر عن |التابع )?"
        rf"(ل|ب)?{_JOINT_COMMAND}|(قالت|ذكرت|أفادت|أوضحت|أكدت) {_JOINT_COMMAND}",
        masks=True,
    ),
    # Guide (hard cases): "Political, humanitarian or civil 'operations rooms' and crisis cells are not";
    # guide: "civilian coordination bodies (aid, elections, health) with no security role".
    _lf(
        "cc_civil_body",
        CC,
        NEGATIVE,
        r"(غرف(ة)?|خلي(ة)|مراكز?|لجنة) (ال)?(عمليات |تنسيق )?(ال)?(أزم|طوارئ|إغاث|انتخاب|صح|إنساني|إعلام|مساعدات|"
        r"أمطار|سيول|حج|مرور|دفاع المدني|حرائق|إسعاف|وباء|تموين|هلال)",
        masks=True,
    ),
    _lf(
        "cc_emergency_calls",
        CC,
        NEGATIVE,
        r"بلاغ|الهلال الأحمر|الدفاع المدني|الإسعاف|الاقتراع|التصويت|الكوارث|حكام|التحكيم|الفيديو",
        requires=r"غرف|مركز|مراكز|خلي",
        masks=True,
    ),
    # Guide: "coordination in the abstract with no body or room"; "coordination between the two sides".
    _lf(
        "cc_generic_coordination",
        CC,
        NEGATIVE,
        r"(التنسيق|تنسيق|التعاون|تعاون) (ال)?(أمني|عسكري|بين|مع)",
        unless=r"مركز|مراكز|غرف|خلي|قياد",
        prior=0.7,
    ),
    # --- joint_operation --------------------------------------------------------------------------------
    # Guide: "a military or security operation carried out, launched, under way, or concretely planned by two
    # or more distinct forces together ... joint patrols or raids".
    _lf(
        "jo_joint_operation",
        JO,
        POSITIVE,
        rf"{_NOT_A_BODY}\b(ال)?(عملي(ة|ات)|حمل(ة|ات)|هجوم|معرك(ة)|دوري(ة|ات)|مداهم(ة|ات)|تمشيط) (\S+ ){{0,2}}{_JOINT}",
        prior=0.8,
    ),
    # Guide (hard cases): "forces named as joint forces ('القوات المشتركة')" (not the joint *command*).
    _lf(
        "jo_joint_forces",
        JO,
        POSITIVE,
        rf"(?<!قيادة )\b(ال)?قوات (\S+ ){{0,3}}{_JOINT}",
        yields_to=("jo_joint_operation",),
        prior=0.8,
    ),
    # Guide (hard cases): "ground forces fighting with coalition air support ('بإسناد من التحالف')".
    _lf(
        "jo_air_support",
        JO,
        POSITIVE,
        r"(بإسناد|بدعم|بمساندة|بغطاء|غطاء|مدعوم(ة|ين|ون)?|مسنود(ة|ين)?|إسناد|مساندة) (\S+ ){0,3}"
        r"(جوي|التحالف|تحالف|طيران|مقاتلات|طائرات|الأباتشي|روسي|روسيا|الإماراتية|الأمريكية|الأميركية)",
        prior=0.8,
    ),
    # Guide: an operation "with the participation of the army, federal police and PMF".
    _lf("jo_participation", JO, POSITIVE, rf"(بمشاركة|مشاركة|بالاشتراك مع) (\S+ ){{0,2}}{_FORCE}"),
    _lf(
        "jo_together_with",
        JO,
        POSITIVE,
        rf"(عملي(ة|ات)|هجوم|حمل(ة|ات)|مداهم|تمشيط|معارك) … (بالتعاون|بالتنسيق|بالاشتراك) مع (ال)?{_FORCE}",
    ),
    # Guide (hard cases): "Allied forces fighting side by side in the same battle (government troops with
    # allied militias)"; "army with Peshmerga". Two forces joined by "and" or "with", not facing each other.
    _lf(
        "jo_allied_forces",
        JO,
        POSITIVE,
        r"(الجيش|قوات)( \S+){0,3} (و|مع |إلى جانب )(ال)?(مقاومة|بيشمركة|حشد|عشائر|قوات|شرطة|حرس|فصائل|حزب الله|"
        r"ميليشيات|مليشيات)",
        unless=r"بين (ال)?(جيش|قوات)|ضد (ال)?(جيش|قوات)|اشتباك|مواجهات بين",
        yields_to=("jo_joint_forces", "jo_air_support", "jo_participation"),
        prior=0.65,
    ),
    # Guide: "No: ... joint military exercises or manoeuvres".
    _lf("jo_exercise", JO, NEGATIVE, r"مناورات|مناورة|تمارين|تمرين|تدريبات|تدريب", masks=True),
    # Guide (hard cases): "proposals or options under discussion, exercises and rescues are not".
    _lf(
        "jo_rescue_or_proposal",
        JO,
        NEGATIVE,
        r"(عمليات|عملية) (ال)?(إنقاذ|بحث|إغاثة|إجلاء)|"
        r"(اقتراح|مقترح|خيار|خيارات|إمكانية) (\S+ ){0,3}(عملية|عمليات|تدخل)",
        masks=True,
    ),
    # Guide (hard cases): "Coalition air strikes alone ... are not" joint_operation.
    _lf(
        "jo_air_strikes_alone",
        JO,
        NEGATIVE,
        r"(غارات|غارة|ضربات|ضربة) (جوية )?(\S+ ){0,2}(ل|من )?(طيران |مقاتلات |طائرات )?(ال)?تحالف",
        unless=rf"{_FORCE}|مواجهات|بإسناد",
        prior=0.6,
    ),
    # Guide: "No: an operation by one force alone; ... political cooperation".
    _lf(
        "jo_political_cooperation",
        JO,
        NEGATIVE,
        r"(التعاون|تعاون|شراكة|الشراكة) (ال)?(سياسي|اقتصادي|تجاري|ثقافي|استراتيجي|دبلوماسي)",
        prior=0.65,
    ),
    # --- attack -----------------------------------------------------------------------------------------
    # Guide: "a specific violent attack, or a wave of attacks, by an armed group, militants or unknown
    # assailants"; "any event the article itself reports as an attack ('شن هجوما', 'صد هجوما')".
    _lf(
        "at_attack_event",
        AT,
        POSITIVE,
        rf"(شن|يشن|تشن|نفذ|تبنى|تبنت|صد|تعرض|استهدف|وقوع|أسفر|ضحايا|حصيلة|منفذ|مقتل|قتل|إصابة|أصيب)\S* "
        rf"(\S+ ){{0,3}}(ال|ل|ب|لل)?{_ATTACK_NOUN}|"
        rf"{_ATTACK_NOUN}\S* (\S+ ){{0,3}}(أسفر|أودى|أدى|أوقع|استهدف|\S*شن|نفذ|قتل|أصيب)",
        prior=0.85,
    ),
    _lf(
        "at_attack_word",
        AT,
        POSITIVE,
        _ATTACK_NOUN,
        yields_to=("at_attack_event", "at_foiled", "at_terrorist_act", "at_chemical", "at_suicide"),
        prior=0.6,
    ),
    # Guide: "bombing, explosive device, suicide attack".
    _lf(
        "at_explosive_device",
        AT,
        POSITIVE,
        r"(عبوة|عبوات|عبوتين) (\S+ )?ناسف|(سيارة|سيارات|دراجة|شاحنة) (\S+ )?(مفخخة|ملغومة|ملغمة)|حزام (\S+ )?ناسف|"
        r"أحزمة ناسفة|براميل (ال)?متفجرة|برميل متفجر|(عبوة|جهاز|جسم) (\S+ )?متفجر",
        prior=0.85,
    ),
    _lf("at_suicide", AT, POSITIVE, r"انتحاري|انتحارية|انتحاريين|انتحاريان|فجر نفسه|فجرت نفسها", prior=0.85),
    _lf(
        "at_bombing",
        AT,
        POSITIVE,
        r"تفجير|تفجيرات|تفجيرين|انفجار|انفجارين|انفجارات",
        yields_to=("at_explosive_device", "at_suicide", "at_terrorist_act"),
        prior=0.7,
    ),
    # Guide: "shooting or armed assault, ambush".
    _lf(
        "at_shooting",
        AT,
        POSITIVE,
        r"(إطلاق|أطلق|فتح)\S* (ال)?(نار|رصاص|عيارات)|بالرصاص|مسلح(ون|ين)? (مجهول|ملثم)|طعن|بسكين|بالسكين|كمين|دهس",
        prior=0.7,
    ),
    # Guide: "assassination ... assassinations and attempts (poisoning included)".
    _lf("at_assassination", AT, POSITIVE, r"اغتيال|اغتيل|اغتالت|اغتاله|تسميم", prior=0.8),
    # Guide: "rocket, mortar, missile or drone attack".
    _lf(
        "at_projectile",
        AT,
        POSITIVE,
        r"(أطلق|إطلاق|سقوط|سقط|اعترض|اعتراض|استهدف|قصف)\S* (\S+ ){0,3}"
        r"(ب|بال|ال)?(صاروخ|صواريخ|قذيفة|قذائف|مقذوف|هاون|طائرة مسيرة|طائرات مسيرة|طائرة بدون طيار|مسيرة)",
        prior=0.75,
    ),
    _lf(
        "at_projectile_word",
        AT,
        POSITIVE,
        r"مقذوف|صاروخ(ا)? (بالستي|باليستي)|قذائف (ال)?هاون|صواريخ (بالستية|باليستية)",
        yields_to=("at_projectile",),
        prior=0.7,
    ),
    # Guide (hard cases): "violent attacks on people or facilities whoever carries them out when the target is
    # civilian (a chemical attack on a town, shelling of residential areas, a strike on a school bus)".
    _lf(
        "at_civilian_target",
        AT,
        POSITIVE,
        r"(قصف|استهدف|استهداف|هاجم)\S* (\S+ ){0,4}(منازل|أحياء|الأحياء|المدنيين|مدنيين|السكنية|مستشفى|مشفى|مدرسة|"
        r"سوق|مسجد|جامع|كنيسة|حافلة|الأهالي|المواطنين|قرية|قرى|المصلين)",
        prior=0.8,
    ),
    _lf(
        "at_civilian_casualties",
        AT,
        POSITIVE,
        r"(مقتل|قتل|إصابة|أصيب|استشهاد|سقوط|ضحايا|بحياة)\S* (\S+ ){0,4}(مدني|مدنيين|أطفال|نساء|المواطنين|المصلين)",
        requires=r"قصف|غارة|غارات|انفجار|تفجير|هجوم|صاروخ|قذيف|مقذوف|رصاص|نار",
        yields_to=("at_civilian_target",),
        prior=0.75,
    ),
    _lf(
        "at_chemical",
        AT,
        POSITIVE,
        r"(هجوم|هجمات|ضربة|قصف|استخدام|الأسلحة|السلاح|أسلحة)\S* (\S+ ){0,2}(ال)?(كيماوي|كيميائي|بغاز|غاز|سام)",
        prior=0.85,
    ),
    _lf(
        "at_terrorist_act",
        AT,
        POSITIVE,
        r"(العملية|عملية|الأعمال|العمل|الحادث|حادث|التفجير|تفجير|الاعتداء|اعتداء|الهجوم|هجوم) (ال)?(إرهابي|"
        r"الانتحاري|الانتحارية|الغادر|الآثم|الجبان|الغاشم|الإجرامي)",
        prior=0.85,
    ),
    # Guide: "Attempted and foiled attacks count" ("أحبطت القوات الأمنية هجوما").
    _lf(
        "at_foiled",
        AT,
        POSITIVE,
        r"(إحباط|أحبط|إفشال|أفشل)\S* (\S+ ){0,3}(هجوم|هجمات|عملية|عمليات|مخطط|محاولة|محاولات|تفجير|اعتداء)",
        prior=0.8,
    ),
    # Guide (hard cases): "killings of hostages".
    _lf("at_hostage_killing", AT, POSITIVE, r"(إعدام|أعدم|ذبح|قتل)\S* (\S+ ){0,3}(رهائن|الرهائن|رهينة)"),
    # Guide: "No: military operations or air strikes by state forces or coalitions against militants".
    _lf(
        "at_strikes_on_militants",
        AT,
        NEGATIVE,
        rf"(غارة|غارات|ضربة|ضربات|قصف|عملية|عمليات|حملة|هجوم)\S* (جوية |عسكرية |أمنية |بري |بريا |عسكريا )?"
        rf"(\S+ ){{0,4}}(على|ضد|استهدفت|تستهدف) "
        rf"(مواقع |معاقل |تجمعات |أوكار |مقرات |عناصر |مخابئ |تحصينات )?(ل)?{_MILITANTS}|"
        r"(هجوم|هجوما|الهجوم) (بري|بريا|البري|واسع|واسعا|عسكري|عسكريا)",
        masks=True,
        prior=0.65,
    ),
    # Guide: "a generic threat with no event"; generic phrases ("to prevent terrorist attacks") do not count.
    _lf(
        "at_generic_threat",
        AT,
        NEGATIVE,
        r"(لمنع|منع|مكافحة|لمكافحة|التصدي|للتصدي|مواجهة|لمواجهة|خطر|مخاطر|تهديد|تهديدات|احتمال|تحسبا|مخاوف|تجنب|"
        r"لتفادي) (\S+ ){0,2}(ال|ل|لل)?(هجمات|هجوم|اعتداءات|الإرهاب|تفجيرات|أعمال)",
        unless=r"أسفر|أودى|مقتل|قتل|أصيب|ضحايا|حدث|وقع",
        masks=True,
        prior=0.6,
    ),
    # Guide (hard cases): "an attack named only as history or as an example ('since the 2015 Paris attacks')".
    _lf(
        "at_history",
        AT,
        NEGATIVE,
        r"ذكرى (\S+ ){0,3}(هجوم|هجمات|تفجير|اغتيال|مجزرة)|(هجمات|اعتداءات|أحداث) (\S+ )?(11 )?(سبتمبر|أيلول)|"
        r"(منذ|بعد) (\S+ )?(هجمات|اعتداءات|تفجيرات) (\S+ ){0,2}(عام )?(19|20)\d\d",
        masks=True,
    ),
    # Not violent, so not an attack: verbal, cyber and sports "attacks", counter-offensives (front-line combat).
    _lf(
        "at_not_violent",
        AT,
        NEGATIVE,
        r"(هجوم|هجوما|هجمات|الهجوم) (\S+ )?(إعلامي|لاذع|حاد|حادا|كلامي|سيبراني|إلكتروني|قرصن|معاكس|مضاد|المعاكس|"
        r"المضاد|لفظي|شرس على)|(هجمات|الهجمات) (ال)?(إلكترونية|سيبرانية)|خط الهجوم|"
        r"مهاجم|لاعب|مباراة|المباراة|الشوط|الدوري|المنتخب|كرة القدم|المدرب|الملعب|البطولة|تسديدة|ركلة",
        masks=True,
    ),
    # Guide (hard cases): "Front-line combat between armed forces (advances, clashes, repelled infiltration)".
    _lf(
        "at_frontline_combat",
        AT,
        NEGATIVE,
        r"اشتباك|اشتباكات|معارك|مواجهات|تسلل|تقدم|التقدم|تحرير|استعادة|السيطرة",
        prior=0.55,
    ),
    # Guide (hard cases): "neither are soldiers firing on protesters at clashes".
    _lf(
        "at_protest",
        AT,
        NEGATIVE,
        r"متظاهر|محتج|المظاهرات|مظاهرة|احتجاج|التظاهر|مسيرات|مسيرة العودة",
        masks=True,
        prior=0.6,
    ),
    # Guide (hard cases): "Ordinary crime (a personal dispute, a robbery) is not attack ... kidnappings without
    # violence, and riots are not".
    _lf(
        "at_crime_or_riot",
        AT,
        NEGATIVE,
        r"سرقة|سطو|نشل|براكاج|خلاف|شجار|مشاجرة|عائلي|ثأر|اختطاف|خطف|شغب|مخدرات|تهريب",
        prior=0.6,
    ),
)

_BY_NAME = {lf.name: lf for lf in LABELLING_FUNCTIONS}
_BY_LABEL = {label: tuple(lf for lf in LABELLING_FUNCTIONS if lf.label == label) for label in LABELS}


def _check_table() -> None:
    if len(_BY_NAME) != len(LABELLING_FUNCTIONS):
        raise RuntimeError("two labelling functions share a name")
    for lf in LABELLING_FUNCTIONS:
        if any(_BY_NAME.get(name, lf).label != lf.label for name in lf.yields_to):
            raise RuntimeError(f"{lf.name} yields to an unknown function or one of another label")


_check_table()


def no_positive_name(label: str) -> str:
    """The name of the implicit function that votes against `label` when none of its positive ones fired."""
    return f"{label}:no_positive"


def sentence_votes(sentence: str) -> dict[str, list[LabellingFunction]]:
    """The functions that vote on one sentence (original text), per label, after masking and `yields_to`."""
    folded = normalize(sentence, FOLD_ALL)
    votes: dict[str, list[LabellingFunction]] = {}
    for label in LABELS:
        fired = [lf for lf in _BY_LABEL[label] if lf.fires(folded)]
        names = {lf.name for lf in fired}
        fired = [lf for lf in fired if names.isdisjoint(lf.yields_to)]
        if any(lf.masks for lf in fired):
            fired = [lf for lf in fired if lf.vote == NEGATIVE]
        votes[label] = fired
    return votes


@dataclass(frozen=True)
class SentenceVotes:
    """One sentence's votes; `span` is its place in the body, None for the title."""

    span: tuple[int, int] | None
    votes: dict[str, list[LabellingFunction]]


def article_votes(record: Record) -> list[SentenceVotes]:
    """Votes of every sentence of the article: the title first (when it has one), then the body's."""
    out = [SentenceVotes(None, sentence_votes(record.title))] if record.title else []
    text = record.text
    out += [SentenceVotes((a, b), sentence_votes(text[a:b])) for a, b in sentence_spans(text)]
    return out


def fired_functions(sentences: Sequence[SentenceVotes], label: str) -> dict[str, int]:
    """Each function's article-level vote on `label` (name -> +1/-1), with the implicit no-positive vote."""
    fired = {lf.name: lf.vote for s in sentences for lf in s.votes[label]}
    if POSITIVE not in fired.values():
        fired[no_positive_name(label)] = NEGATIVE
    return fired


@dataclass(frozen=True)
class Decision:
    """The label model's call on one label of one article.

    Attributes:
        value: True (positive), False (negative) or None (abstain).
        probability: P(label) under the model.
        evidence: the body span of the evidence sentence of a positive decision.
    """

    value: bool | None
    probability: float
    evidence: tuple[int, int] | None = None

    @property
    def confidence(self) -> float:
        """How sure the model is of its decision (or would be, for an abstention)."""
        return max(self.probability, 1.0 - self.probability)


def _logit(p: float) -> float:
    p = min(max(p, 1e-3), 1.0 - 1e-3)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class LabelModel:
    """Naive-Bayes weighted vote over labelling functions; see the module docstring.

    Attributes:
        accuracies: function name (including `<label>:no_positive`) -> estimated accuracy of its votes.
        base_rates: label -> share of articles with it (1/2 without labelled data).
        min_confidence: a label is decided when max(P, 1 - P) >= this, else the model abstains on it.
    """

    accuracies: dict[str, float]
    base_rates: dict[str, float]
    min_confidence: float = DEFAULT_MIN_CONFIDENCE

    def __post_init__(self) -> None:
        if not 0.5 <= self.min_confidence < 1.0:
            raise ValueError(f"min_confidence must be in [0.5, 1), got {self.min_confidence}")

    @classmethod
    def from_priors(cls, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> LabelModel:
        """Every function at its hand-set prior accuracy and even base rates: a plain weighted vote."""
        return cls(_prior_accuracies(), dict.fromkeys(LABELS, 0.5), min_confidence)

    @classmethod
    def fit(
        cls,
        records: Iterable[Record],
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        prior_strength: float = PRIOR_STRENGTH,
    ) -> LabelModel:
        """Estimate each function's accuracy and each label's base rate on labelled records.

        Raises:
            DataError: when no record carries labels.
        """
        right, votes, positives = Counter[str](), Counter[str](), Counter[str]()
        n = 0
        for record in records:
            if record.labels is None:
                continue
            n += 1
            sentences = article_votes(record)
            for label in LABELS:
                truth = POSITIVE if label in record.labels else NEGATIVE
                positives[label] += truth == POSITIVE
                for name, vote in fired_functions(sentences, label).items():
                    votes[name] += 1
                    right[name] += vote == truth
        if not n:
            raise DataError("no labelled records to fit the label model on")
        accuracies = {
            name: (right[name] + prior_strength * prior) / (votes[name] + prior_strength)
            for name, prior in _prior_accuracies().items()
        }
        base_rates = {label: (positives[label] + 0.5) / (n + 1.0) for label in LABELS}
        return cls(accuracies, base_rates, min_confidence)

    def weight(self, name: str) -> float:
        """The log-likelihood ratio of one vote of the function, signed: > 0 argues for its label."""
        label = name.split(":")[0] if name not in _BY_NAME else _BY_NAME[name].label
        vote = NEGATIVE if name not in _BY_NAME else _BY_NAME[name].vote
        accuracy = self.accuracies[name]
        p_label = accuracy if vote == POSITIVE else 1.0 - accuracy
        llr = _logit(p_label) - _logit(self.base_rates[label])
        return max(llr, 0.0) if vote == POSITIVE else min(llr, 0.0)

    def probability(self, sentences: Sequence[SentenceVotes], label: str) -> float:
        """P(label) for one article."""
        score = _logit(self.base_rates[label]) + sum(map(self.weight, fired_functions(sentences, label)))
        return 1.0 / (1.0 + math.exp(-score))

    def decide(self, sentences: Sequence[SentenceVotes]) -> dict[str, Decision]:
        """Each label's decision for one article from its sentence votes."""
        decisions = {}
        for label in LABELS:
            probability = self.probability(sentences, label)
            value: bool | None = None
            if probability >= self.min_confidence:
                value = True
            elif 1.0 - probability >= self.min_confidence:
                value = False
            evidence = self._evidence(sentences, label) if value else None
            decisions[label] = Decision(value, probability, evidence)
        return decisions

    def _evidence(self, sentences: Sequence[SentenceVotes], label: str) -> tuple[int, int] | None:
        """The body sentence whose positive votes weigh most; the first one on a tie."""
        best, best_weight = None, -1.0
        for s in sentences:
            positive = [lf.name for lf in s.votes[label] if lf.vote == POSITIVE]
            total = sum(map(self.weight, positive))
            if s.span is not None and positive and total > best_weight:
                best, best_weight = s.span, total
        return best


def _prior_accuracies() -> dict[str, float]:
    priors = {lf.name: lf.prior for lf in LABELLING_FUNCTIONS}
    priors.update({no_positive_name(label): NO_POSITIVE_PRIOR for label in LABELS})
    return priors


# --- labelling a corpus ---------------------------------------------------------------------------------------


def weak_record(record: Record, decisions: dict[str, Decision]) -> dict[str, Any] | None:
    """The labelled-format row for an article whose labels are all decided, else None."""
    if any(d.value is None for d in decisions.values()):
        return None
    labels = [label for label in LABELS if decisions[label].value]
    evidence = {}
    for label in labels:
        span = decisions[label].evidence
        if span is not None:
            evidence[label] = record.text[span[0] : span[1]]
    row: dict[str, Any] = {"id": record.id}
    if record.title:
        row["title"] = record.title
    row.update(
        text=record.text,
        labels=labels,
        evidence=evidence,
        weak={label: round(decisions[label].confidence, 4) for label in LABELS},
    )
    return row


def excluded_by_corpus(record_id: str, corpora: Sequence[str]) -> bool:
    """Whether the id belongs to one of `corpora`, told by its id prefix (`CORPUS_ID_PREFIXES`)."""
    return any(record_id.startswith(CORPUS_ID_PREFIXES[name]) for name in corpora)


@dataclass
class WeakLabelReport:
    """What one `weak_label` run read and wrote."""

    read: int = 0
    bad_rows: int = 0
    excluded_corpus: int = 0
    excluded_labelled: int = 0
    emitted: int = 0
    abstained: int = 0
    positives: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def __str__(self) -> str:
        per_label = ", ".join(f"{label} {self.positives[label]}" for label in LABELS)
        return (
            f"read {self.read} articles in {self.seconds:.0f} s ({self.bad_rows} bad rows skipped, "
            f"{self.excluded_corpus} in excluded corpora, {self.excluded_labelled} already labelled); "
            f"emitted {self.emitted} ({per_label}; {self.positives['none']} with no label), "
            f"skipped {self.abstained} uncertain"
        )


def weak_label(
    corpus: Sequence[str | Path],
    output: str | Path,
    model: LabelModel,
    *,
    exclude_corpora: Sequence[str] = (),
    exclude_texts: Iterable[Record] = (),
    max_articles: int | None = None,
    progress: bool = True,
) -> WeakLabelReport:
    """Label corpus files with `model` and write the articles it decides fully to `output` (JSONL).

    Args:
        corpus: `.jsonl(.gz)`/`.csv(.gz)` files, streamed; rows without an id get `<file name>:<line>`.
        output: written to `<output>.tmp` and renamed when complete.
        model: the label model (`LabelModel.fit` on the labelled training set).
        exclude_corpora: corpus names (keys of `CORPUS_ID_PREFIXES`) whose articles are skipped.
        exclude_texts: labelled records never to emit, matched by id or by text.
        max_articles: stop after reading this many articles (smoke runs).
        progress: show a progress bar.
    """
    unknown = sorted(set(exclude_corpora) - set(CORPUS_ID_PREFIXES))
    if unknown:
        raise DataError(f"unknown corpus name(s) {unknown}; known: {sorted(CORPUS_ID_PREFIXES)}")
    held_ids, held_texts = set(), set()
    for record in exclude_texts:
        held_ids.add(record.id)
        held_texts.add(record.text)
    report = WeakLabelReport()
    start = time.perf_counter()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".tmp")
    with (
        partial.open("w", encoding="utf-8") as out,
        tqdm(desc="weak-labelling", unit=" articles", disable=not progress) as bar,
    ):
        for record in _stream(corpus, max_articles, report):
            bar.update()
            if excluded_by_corpus(record.id, exclude_corpora):
                report.excluded_corpus += 1
                continue
            if record.id in held_ids or record.text in held_texts:
                report.excluded_labelled += 1
                continue
            row = weak_record(record, model.decide(article_votes(record)))
            if row is None:
                report.abstained += 1
                continue
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            report.emitted += 1
            report.positives.update(row["labels"] or ["none"])
    partial.replace(output)
    report.seconds = time.perf_counter() - start
    return report


def _stream(paths: Sequence[str | Path], limit: int | None, report: WeakLabelReport) -> Iterator[Record]:
    for path in paths:
        for line, item in iter_rows(path, default_id_prefix=f"{Path(path).name}:"):
            if limit is not None and report.read >= limit:
                return
            if isinstance(item, DataError):
                report.bad_rows += 1
                if report.bad_rows <= 5:
                    logger.warning("skipping %s:%d: %s", path, line, item.message)
                continue
            report.read += 1
            yield item


# --- measuring on labelled data -------------------------------------------------------------------------------


def evaluate(model: LabelModel, records: Sequence[Record]) -> dict[str, Any]:
    """How well the functions and the combined labeller agree with gold labels.

    Returns:
        {"articles", "min_confidence",
         "functions": {name: {"label", "vote", "coverage", "precision", "votes", "accuracy", "weight"}},
         "labels": {label: {"coverage", "decided": {precision, recall, f1, support}, "overall": {...}}},
         "overall_macro_f1", "emitted": {"articles", "coverage", "macro_f1", "per_label"},
         "evidence_hit_rate", "evidence_pairs"}: "decided" counts only the articles the model does not
        abstain on for that label; "overall" treats an abstention as negative, comparable with a classifier;
        "emitted" is the articles `weak_label` would write (all three labels decided).
    """
    import numpy as np

    from training.evaluate import evidence_hit  # imported here: it pulls in the model code

    records = [r for r in records if r.labels is not None]
    if not records:
        raise DataError("no labelled records to evaluate on")
    names = [*_BY_NAME, *(no_positive_name(label) for label in LABELS)]
    votes, right = Counter[str](), Counter[str]()
    truth = np.zeros((len(records), len(LABELS)), dtype=int)
    pred = np.zeros_like(truth)
    decided = np.zeros_like(truth, dtype=bool)
    hits: list[bool] = []
    for i, record in enumerate(records):
        sentences = article_votes(record)
        decisions = model.decide(sentences)
        for k, label in enumerate(LABELS):
            gold = label in record.labels  # type: ignore[operator]
            truth[i, k] = gold
            for name, vote in fired_functions(sentences, label).items():
                votes[name] += 1
                right[name] += (vote == POSITIVE) == gold
            decision = decisions[label]
            decided[i, k] = decision.value is not None
            pred[i, k] = bool(decision.value)
            quote = (record.evidence or {}).get(label)
            if decision.value and gold and quote and decision.evidence:
                a, b = decision.evidence
                hit = evidence_hit(record.text, quote, [record.text[a:b]])
                if hit is not None:
                    hits.append(hit)
    n = len(records)
    functions = {
        name: {
            "label": name.split(":")[0] if ":" in name else _BY_NAME[name].label,
            "vote": "-" if ":" in name or _BY_NAME[name].vote == NEGATIVE else "+",
            "coverage": votes[name] / n,
            "precision": right[name] / votes[name] if votes[name] else 0.0,
            "votes": votes[name],
            "accuracy": model.accuracies[name],
            "weight": model.weight(name),
        }
        for name in names
    }
    overall = classification_report(truth, pred, list(LABELS))
    labels = {}
    for k, label in enumerate(LABELS):
        rows = decided[:, k]
        on_decided = classification_report(truth[rows, k : k + 1], pred[rows, k : k + 1], [label])
        labels[label] = {
            "coverage": float(rows.mean()),
            "decided": on_decided["per_label"][label],
            "overall": overall["per_label"][label],
        }
    emitted = decided.all(axis=1)
    emitted_report = classification_report(truth[emitted], pred[emitted], list(LABELS))
    return {
        "articles": n,
        "min_confidence": model.min_confidence,
        "functions": functions,
        "labels": labels,
        "overall_macro_f1": overall["macro_f1"],
        "emitted": {
            "articles": int(emitted.sum()),
            "coverage": float(emitted.mean()),
            "macro_f1": emitted_report["macro_f1"],
            "per_label": emitted_report["per_label"],
        },
        "evidence_hit_rate": sum(hits) / len(hits) if hits else None,
        "evidence_pairs": len(hits),
    }


def format_evaluation(metrics: dict[str, Any]) -> str:
    """Markdown tables of `evaluate`'s metrics, for the command's output."""
    lines = [
        f"## Labelling functions on {metrics['articles']} articles",
        "",
        "| function | label | vote | coverage | precision | fitted accuracy | weight |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, f in metrics["functions"].items():
        lines.append(
            f"| {name} | {f['label']} | {f['vote']} | {f['coverage']:.3f} | {f['precision']:.3f} "
            f"| {f['accuracy']:.3f} | {f['weight']:+.2f} |"
        )
    lines += [
        "",
        f"## Weak labeller (min confidence {metrics['min_confidence']})",
        "",
        "| label | coverage | P (decided) | R (decided) | F1 (decided) | P (overall) | R (overall) | F1 (overall) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, m in metrics["labels"].items():
        d, o = m["decided"], m["overall"]
        lines.append(
            f"| {label} | {m['coverage']:.3f} | {d['precision']:.3f} | {d['recall']:.3f} | {d['f1']:.3f} "
            f"| {o['precision']:.3f} | {o['recall']:.3f} | {o['f1']:.3f} |"
        )
    emitted = metrics["emitted"]
    hit = metrics["evidence_hit_rate"]
    lines += [
        "",
        f"macro-F1, abstain = negative: {metrics['overall_macro_f1']:.3f}",
        f"articles with all labels decided (would be emitted): {emitted['articles']} "
        f"({emitted['coverage']:.1%}), macro-F1 on them {emitted['macro_f1']:.3f}",
        "evidence sentence hits the gold quote: "
        + (f"{hit:.3f} of {metrics['evidence_pairs']} true positives" if hit is not None else "n/a"),
    ]
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> WeakLabelReport | dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="naba weak-label", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", nargs="+", default=[], help="Unlabelled articles: .jsonl(.gz)/.csv(.gz).")
    parser.add_argument("--output", type=Path, default=None, help="Weakly labelled articles (JSONL).")
    parser.add_argument(
        "--train",
        type=Path,
        default=None,
        help="Labelled articles to fit the functions' accuracies on "
        "(default: <NABA_DATA_DIR>/labelled/train.jsonl when present, else the hand-set priors).",
    )
    parser.add_argument(
        "--holdout",
        type=Path,
        nargs="*",
        default=None,
        help="Labelled files whose articles are never emitted, besides --train and --evaluate "
        "(default: <NABA_DATA_DIR>/labelled/dev.jsonl when present).",
    )
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=DEFAULT_MIN_CONFIDENCE,
        help="Decide a label when the model is at least this sure, in [0.5, 1); else abstain.",
    )
    parser.add_argument("--max-articles", type=int, default=None, help="Stop after reading N articles.")
    parser.add_argument(
        "--exclude-corpus",
        nargs="+",
        default=[],
        choices=sorted(CORPUS_ID_PREFIXES),
        help="Skip these corpora's articles (told by id prefix, e.g. SaudiNewsNet ids start with SNN-).",
    )
    parser.add_argument(
        "--evaluate", type=Path, default=None, help="Labelled file (dev) to measure the labeller on."
    )
    parser.add_argument("--metrics", type=Path, default=None, help="Write --evaluate's metrics here (JSON).")
    parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    args = parser.parse_args(argv)
    if bool(args.corpus) != bool(args.output):
        parser.error("--corpus and --output go together")
    if not args.corpus and not args.evaluate:
        parser.error("nothing to do: give --corpus and --output, or --evaluate, or both")
    if not 0.5 <= args.min_confidence < 1.0:
        parser.error(f"--min-confidence must be in [0.5, 1), got {args.min_confidence}")
    if args.max_articles is not None and args.max_articles < 1:
        parser.error("--max-articles must be at least 1")

    from service.config import get_settings

    labelled_dir = get_settings().data_dir / "labelled"
    train_file = args.train or _if_file(labelled_dir / "train.jsonl")
    holdout = (
        args.holdout if args.holdout is not None else [p for p in [labelled_dir / "dev.jsonl"] if p.is_file()]
    )
    if train_file is not None:
        train = read_records([train_file], known_labels=LABELS)
        model = LabelModel.fit(train, args.min_confidence)
        logger.info("fitted the functions' accuracies on %d articles of %s", len(train), train_file)
    else:
        train = []
        model = LabelModel.from_priors(args.min_confidence)
        logger.warning("no labelled training file: the functions keep their hand-set prior accuracies")

    result: WeakLabelReport | dict[str, Any] = {}
    dev: list[Record] = []
    if args.evaluate:
        dev = read_records([args.evaluate], known_labels=LABELS)
        result = evaluate(model, dev)
        if args.metrics:
            args.metrics.parent.mkdir(parents=True, exist_ok=True)
            args.metrics.write_text(json.dumps(result, ensure_ascii=False, indent=2), "utf-8")
        print(format_evaluation(result))  # noqa: T201 - the tables are this option's output
    if args.corpus:
        held = [*train, *dev, *(read_records(holdout) if holdout else [])]
        result = weak_label(
            args.corpus,
            args.output,
            model,
            exclude_corpora=args.exclude_corpus,
            exclude_texts=held,
            max_articles=args.max_articles,
            progress=not args.no_progress,
        )
        logger.info("%s; wrote %s", result, args.output)
    return result


def _if_file(path: Path) -> Path | None:
    return path if path.is_file() else None
