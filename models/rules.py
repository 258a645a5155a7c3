"""The annotation guide's rules as code: labelling functions, their votes, and the rule features they give.

Each labelling function (`LABELLING_FUNCTIONS`) is a named regular expression written from LABELS.md and
matched on each *sentence* of an article after full folding (`normalize(text, FOLD_ALL)`: alef, yaa and taa
marbuta variants merged, diacritics and tatweel gone). It votes for its label (+1) or against it (-1), or
abstains. Two rules act within a sentence: a negative function that `masks` is one of the guide's exclusions
("joint exercises", "the spokesman of the Joint Operations Command said") and cancels its label's positive
votes in that sentence; a function that `yields_to` a more specific one (a bare "هجوم" to "شن هجوما") is
silent where that one fires, so one phrase is not counted twice.

Two users, one table: `naba weak-label` (`naba.training.weak`) combines the votes into weak labels, and a model
trained with `--rule-features` reads one 0/1 feature per function (`rule_features`: did it fire anywhere in the
title or body) next to its text. Such a model stores the feature names and `RULES_VERSION`; bump the version
whenever a function is added, removed or changes what it matches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from naba.models.preprocessing import FOLD_ALL, normalize, sentence_spans

# Bump whenever LABELLING_FUNCTIONS changes what any function matches (tests/models/test_rules.py pins it).
RULES_VERSION = "1"

CC, JO, AT = "coordination_centre", "joint_operation", "attack"
LABELS = (CC, JO, AT)
POSITIVE, NEGATIVE = 1, -1
_GAP = r"(?:\S+ ){0,4}"  # what "… " stands for in a pattern: up to four words, then the next one
# Patterns read a word as `\S*` up to the next space, so on a run of N characters without one a pattern that
# starts at every few characters reads N²/k: 100,000 characters of "هجومهجوم..." took 4 s per function.
# Sentences are matched with such runs cut to this length (no Arabic word comes near it).
MAX_WORD_CHARS = 64
_LONG_RUN = re.compile(rf"\S{{{MAX_WORD_CHARS + 1},}}")


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

FUNCTIONS_BY_NAME = {lf.name: lf for lf in LABELLING_FUNCTIONS}
_BY_LABEL = {label: tuple(lf for lf in LABELLING_FUNCTIONS if lf.label == label) for label in LABELS}


def _check_table() -> None:
    if len(FUNCTIONS_BY_NAME) != len(LABELLING_FUNCTIONS):
        raise RuntimeError("two labelling functions share a name")
    for lf in LABELLING_FUNCTIONS:
        if any(FUNCTIONS_BY_NAME.get(name, lf).label != lf.label for name in lf.yields_to):
            raise RuntimeError(f"{lf.name} yields to an unknown function or one of another label")


_check_table()


# --- votes --------------------------------------------------------------------------------------------------


class HasText(Protocol):
    """An article as the rules read it: a `naba.models.results.Article` or a `naba.models.records.Record`."""

    @property
    def text(self) -> str: ...

    @property
    def title(self) -> str | None: ...


def no_positive_name(label: str) -> str:
    """The name of the implicit function that votes against `label` when none of its positive ones fired."""
    return f"{label}:no_positive"


def _label_votes(folded: str, label: str) -> list[LabellingFunction]:
    """The functions of `label` that vote on one folded sentence, after masking and `yields_to`."""
    fired = [lf for lf in _BY_LABEL[label] if lf.fires(folded)]
    names = {lf.name for lf in fired}
    fired = [lf for lf in fired if names.isdisjoint(lf.yields_to)]
    if any(lf.masks for lf in fired):
        fired = [lf for lf in fired if lf.vote == NEGATIVE]
    return fired


def fold(sentence: str) -> str:
    """A sentence as the functions read it: fully folded, with runs of over `MAX_WORD_CHARS` non-space
    characters cut to that length so that matching stays linear in the sentence's length."""
    return _LONG_RUN.sub(lambda m: m.group(0)[:MAX_WORD_CHARS], normalize(sentence, FOLD_ALL))


def sentence_votes(sentence: str) -> dict[str, list[LabellingFunction]]:
    """The functions that vote on one sentence (original text), per label, after masking and `yields_to`."""
    folded = fold(sentence)
    return {label: _label_votes(folded, label) for label in LABELS}


def positive_votes(sentences: Sequence[str], label: str) -> list[int]:
    """How many of `label`'s positive functions vote in each sentence: the guide's pointer to the sentences a
    person would quote for it (`Predictor.evidence_indices` ranks them first). All zeros for a label the
    guide has no rules for, which a retrained label set may bring."""
    if label not in _BY_LABEL:
        return [0] * len(sentences)
    return [sum(lf.vote == POSITIVE for lf in _label_votes(fold(s), label)) for s in sentences]


@dataclass(frozen=True)
class SentenceVotes:
    """One sentence's votes; `span` is its place in the body, None for the title."""

    span: tuple[int, int] | None
    votes: dict[str, list[LabellingFunction]]


def article_votes(article: HasText | str, title: str | None = None) -> list[SentenceVotes]:
    """Votes of every sentence of the article: the title first (when it has one), then the body's.

    Args:
        article: the body text, or an object with `text` and `title` (an `Article`, a training `Record`).
        title: the title, with a plain body text only.

    Raises:
        TypeError: a `title` next to an article object (which carries its own).
    """
    if isinstance(article, str):
        text = article
    elif title is not None:
        raise TypeError("give a title with a plain text only; an article object carries its own")
    else:
        text, title = article.text, article.title
    out = [SentenceVotes(None, sentence_votes(title))] if title else []
    out += [SentenceVotes((a, b), sentence_votes(text[a:b])) for a, b in sentence_spans(text)]
    return out


def fired_functions(sentences: Sequence[SentenceVotes], label: str) -> dict[str, int]:
    """Each function's article-level vote on `label` (name -> +1/-1), with the implicit no-positive vote."""
    fired = {lf.name: lf.vote for s in sentences for lf in s.votes[label]}
    if POSITIVE not in fired.values():
        fired[no_positive_name(label)] = NEGATIVE
    return fired


# --- rule features ------------------------------------------------------------------------------------------


def rule_feature_names() -> list[str]:
    """Every labelling function's name, in table order: the features a `--rule-features` model is built with."""
    return [lf.name for lf in LABELLING_FUNCTIONS]


def unknown_rule_features(names: Sequence[str]) -> list[str]:
    """The names among `names` that this version's table does not have (features it cannot compute)."""
    return [name for name in names if name not in FUNCTIONS_BY_NAME]


def rule_features(text: str, title: str | None = None, names: Sequence[str] | None = None) -> list[float]:
    """One 0/1 feature per labelling function: 1.0 when it votes (after masking and `yields_to`) in any
    sentence of the title or body, in either direction; the same functions `fired_functions` lists.

    Args:
        names: which functions, in this order (an artifact's `heads.rule_features`); default
            `rule_feature_names()`.

    Raises:
        KeyError: a name that is not in `LABELLING_FUNCTIONS`.
    """
    names = rule_feature_names() if names is None else names
    if unknown := unknown_rule_features(names):
        raise KeyError(f"unknown labelling functions {unknown} (rules version {RULES_VERSION})")
    fired = {lf.name for s in article_votes(text, title) for votes in s.votes.values() for lf in votes}
    return [float(name in fired) for name in names]
