"""Tests for `naba.batch.run_batch`: output shape and order, error lines, length-sorted batches, resume."""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from models.errors import DataError, InvalidInputError
from models.results import Analysis, Article, LabelResult, ModelRef
from naba.batch import run_batch

# Arabic texts of different lengths, so that length sorting changes the order.
TEXTS = [
    "أعلنت الحكومة عن خطة جديدة لدعم الزراعة في المحافظات الجنوبية.",
    "فاز المنتخب.",
    "ارتفعت أسعار النفط اليوم بعد قرار أوبك خفض الإنتاج. وقال محللون إن الأسعار قد تواصل الصعود.",
    "افتتح معرض الكتاب.",
    "عقد البرلمان جلسة لمناقشة الموازنة العامة للعام المقبل وسط خلافات بين الكتل السياسية.",
    "هطلت أمطار غزيرة على بغداد.",
]


class FakePredictor:
    """Duck-types `Predictor.analyze`: deterministic results from each text, and a record of every batch.

    `crash_after` raises a plain error once that many articles are done, as a killed process would stop the
    run; a text containing "REFUSE" is refused like an article the real predictor cannot analyse.
    """

    def __init__(self, crash_after: int | None = None) -> None:
        self.batches: list[list[Article]] = []
        self.crash_after = crash_after
        self.done = 0
        self.options: dict[str, Any] = {}  # the keyword options of the last call

    def analyze(
        self, articles: Sequence[Article], summary_sentences: int | None = None, **options: Any
    ) -> list[Analysis]:
        self.options = options
        if self.crash_after is not None and self.done + len(articles) > self.crash_after:
            raise RuntimeError("simulated crash")
        if any("REFUSE" in article.text for article in articles):
            raise InvalidInputError("refused")
        self.batches.append(list(articles))
        self.done += len(articles)
        return [fake_analysis(article.text, summary_sentences) for article in articles]


def fake_analysis(text: str, summary_sentences: int | None = None) -> Analysis:
    score = round(len(text) % 97 / 97, 4)
    return Analysis(
        labels=[LabelResult(label="news", score=score, evidence=[text[:10]])],
        scores={"news": score, "sport": round(1 - score, 4)},
        summary=text[: 5 * (summary_sentences or 1)],
        summary_indices=[0],
        model=ModelRef(name="fake", version="0"),
    )


def write_jsonl(path: Path, rows: Sequence[dict[str, Any] | str]) -> Path:
    """Write rows as JSON lines; a str row is written as is (for malformed lines)."""
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def articles(n: int = len(TEXTS)) -> list[dict[str, Any]]:
    return [{"id": f"a{i}", "title": f"عنوان {i}", "text": TEXTS[i % len(TEXTS)]} for i in range(n)]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(predictor: FakePredictor, input_path: Path, output_path: Path, **kwargs: Any) -> Any:
    return run_batch(predictor, input_path, output_path, progress=False, **kwargs)


def test_run_batch_writes_one_line_per_article_in_input_order(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", articles())
    output = tmp_path / "out.jsonl"

    report = run(FakePredictor(), source, output, batch_size=2, summary_sentences=2)

    results = read_jsonl(output)
    assert [r["id"] for r in results] == [f"a{i}" for i in range(len(TEXTS))]
    for result, text in zip(results, TEXTS, strict=True):
        assert result == {"id": result["id"], **fake_analysis(text, 2).to_dict()}
    assert "أعلنت" in output.read_text(encoding="utf-8")  # ensure_ascii=False
    assert (report.total_lines, report.written, report.skipped_done, report.errors) == (6, 6, 0, 0)
    assert (tmp_path / "out.errors.jsonl").read_text() == ""


def test_run_batch_reads_gzipped_jsonl_and_names_rows_without_id(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl.gz"
    rows = [{"text": TEXTS[0]}, {"id": "b", "text": TEXTS[1]}]
    with gzip.open(source, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    output = tmp_path / "out.jsonl"

    run(FakePredictor(), source, output)

    assert [r["id"] for r in read_jsonl(output)] == ["line-1", "b"]


def test_run_batch_reads_csv(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    with source.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "title", "text"])
        writer.writeheader()
        writer.writerows(articles(3))
    output = tmp_path / "out.jsonl"

    report = run(FakePredictor(), source, output)

    assert [r["id"] for r in read_jsonl(output)] == ["a0", "a1", "a2"]
    assert read_jsonl(output)[2]["summary"] == fake_analysis(TEXTS[2]).summary
    assert report.written == 3


def test_run_batch_records_bad_lines_and_goes_on(tmp_path: Path) -> None:
    good = articles(3)
    rows: list[dict[str, Any] | str] = [
        good[0],
        '{"id": "broken", "text": ',  # line 2: invalid JSON
        {"id": "empty", "text": "   "},  # line 3: iter_rows rejects empty text
        good[1],
        {"id": "latin", "text": "No Arabic letters here."},  # line 5
        {"id": "long", "text": "خبر " * 100},  # line 6: over max_chars
        {"id": "refused", "text": TEXTS[0] + " REFUSE"},  # line 7: the predictor refuses it
        good[2],
    ]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    output = tmp_path / "out.jsonl"
    errors_path = tmp_path / "errors.jsonl"

    report = run(FakePredictor(), source, output, errors_path=errors_path, max_chars=200, batch_size=4)

    assert [r["id"] for r in read_jsonl(output)] == ["a0", "a1", "a2"]
    errors = read_jsonl(errors_path)
    assert [(e["line"], e["error_type"]) for e in errors] == [
        (2, "data_error"),
        (3, "data_error"),
        (5, "invalid_input"),
        (6, "input_too_long"),
        (7, "invalid_input"),
    ]
    assert [e["id"] for e in errors][2:] == ["latin", "long", "refused"]
    assert all(isinstance(e["error"], str) and e["error"] for e in errors)
    assert (report.total_lines, report.written, report.errors) == (8, 3, 5)


def test_run_batch_sorts_each_chunk_by_length(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", articles(12))
    predictor = FakePredictor()

    run(predictor, source, tmp_path / "out.jsonl", batch_size=2, chunk_size=6)

    assert [len(batch) for batch in predictor.batches] == [2, 2, 2, 2, 2, 2]
    for first in (0, 3):  # batches of one chunk
        lengths = [len(a.text) for batch in predictor.batches[first : first + 3] for a in batch]
        assert lengths == sorted(lengths)
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == [f"a{i}" for i in range(12)]


def test_run_batch_resumes_after_a_crash(tmp_path: Path) -> None:
    rows: list[dict[str, Any] | str] = [*articles(10), "not json"]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    output = tmp_path / "out.jsonl"

    with pytest.raises(RuntimeError, match="simulated crash"):
        run(FakePredictor(crash_after=5), source, output, batch_size=1, chunk_size=2)
    assert [r["id"] for r in read_jsonl(output)] == ["a0", "a1", "a2", "a3"]  # the third chunk is lost

    predictor = FakePredictor()
    report = run(predictor, source, output, batch_size=1, chunk_size=2)

    assert [r["id"] for r in read_jsonl(output)] == [f"a{i}" for i in range(10)]
    assert sorted(a.id for batch in predictor.batches for a in batch) == [f"a{i}" for i in range(4, 10)]
    assert (report.skipped_done, report.written, report.errors) == (4, 6, 1)
    assert [e["line"] for e in read_jsonl(tmp_path / "out.errors.jsonl")] == [11]


@pytest.mark.parametrize("cut", [1, 25], ids=["missing-newline", "half-line"])
def test_run_batch_repairs_a_torn_last_line(tmp_path: Path, cut: int) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", articles())
    output = tmp_path / "out.jsonl"
    run(FakePredictor(), source, output)
    complete = output.read_bytes()
    output.write_bytes(complete[:-cut])

    predictor = FakePredictor()
    report = run(predictor, source, output)

    assert output.read_bytes() == complete
    assert [a.id for batch in predictor.batches for a in batch] == ["a5"]
    assert (report.skipped_done, report.written) == (5, 1)


def test_run_batch_refuses_output_corrupt_before_its_last_line(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", articles())
    output = write_jsonl(tmp_path / "out.jsonl", ["garbage", '{"id": "a0"}'])

    with pytest.raises(DataError, match=re.escape("out.jsonl:1:")):
        run(FakePredictor(), source, output)


def test_run_batch_sends_duplicate_ids_to_errors(tmp_path: Path) -> None:
    rows = articles(3)
    rows.append({"id": "a1", "text": TEXTS[4]})
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    output = tmp_path / "out.jsonl"

    report = run(FakePredictor(), source, output)

    assert [r["id"] for r in read_jsonl(output)] == ["a0", "a1", "a2"]
    assert read_jsonl(output)[1]["summary"] == fake_analysis(TEXTS[1]).summary  # the first one wins
    [error] = read_jsonl(tmp_path / "out.errors.jsonl")
    assert error["line"] == 4
    assert error["error_type"] == "data_error"
    assert report.errors == 1


def test_run_batch_rerun_over_complete_output_writes_nothing(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [*articles(), "{"])
    output = tmp_path / "out.jsonl"
    run(FakePredictor(), source, output)
    before = output.read_bytes(), (tmp_path / "out.errors.jsonl").read_bytes()

    predictor = FakePredictor()
    report = run(predictor, source, output)

    assert (output.read_bytes(), (tmp_path / "out.errors.jsonl").read_bytes()) == before
    assert predictor.batches == []
    assert (report.total_lines, report.skipped_done, report.written, report.errors) == (7, 6, 0, 1)


def test_run_batch_rejects_bad_arguments(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", articles())
    with pytest.raises(ValueError, match="positive"):
        run(FakePredictor(), source, tmp_path / "out.jsonl", batch_size=0)
    with pytest.raises(ValueError, match="different"):
        run(FakePredictor(), source, source)
    with pytest.raises(ValueError, match="plain JSONL"):
        run(FakePredictor(), source, tmp_path / "out.jsonl.gz")
    with pytest.raises(DataError, match="no such file"):
        run(FakePredictor(), tmp_path / "missing.jsonl", tmp_path / "out.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]  # nothing created on refusal


def test_run_batch_passes_summary_ratio_and_operating_point(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", articles(2))
    predictor = FakePredictor()
    run(predictor, source, tmp_path / "out.jsonl", summary_ratio=0.5, operating_point="recall")
    assert predictor.options == {"summary_ratio": 0.5, "operating_point": "recall"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"summary_sentences": 2, "summary_ratio": 0.5}, "not both"),
        ({"summary_ratio": 1.5}, "summary_ratio"),
        ({"operating_point": "lenient"}, "operating_point"),
    ],
)
def test_run_batch_refuses_bad_options_before_touching_files(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", articles(2))
    with pytest.raises(InvalidInputError, match=message):
        run(FakePredictor(), source, tmp_path / "out.jsonl", **options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]
