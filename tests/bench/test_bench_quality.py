"""`bench/quality.py`'s summary baselines: Lead-n and the Oracle-1 ceiling."""

from __future__ import annotations

import pytest

from bench.quality import lead, oracle_1
from training.data import Record

RECORDS = [
    Record(
        id="a",
        text="افتتح المعرض الدولي للكتاب أبوابه. وقتل ثلاثة جنود في هجوم على حاجز أمني شمال البلاد.",
        summary="مقتل ثلاثة جنود في هجوم على حاجز أمني شمال البلاد",
    ),
    Record(
        id="b",
        text="أعلن الجيش بدء عملية مشتركة. وقال المتحدث إن العملية مستمرة.",
        summary="بدء عملية مشتركة",
    ),
]


def test_oracle_1_picks_each_articles_best_sentence() -> None:
    best = oracle_1(RECORDS)
    assert best["rougeL"] > lead(RECORDS, 1)["rougeL"]  # article a's best sentence is its second
    assert oracle_1(RECORDS[1:]) == pytest.approx(lead(RECORDS[1:], 1))  # b's best is its first
