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

from naba.batch import BatchUsageError, ResumeRefusedError, manifest_path, run_batch
from naba.models.errors import DataError, InvalidInputError
from naba.models.results import DEFAULT_OPTIONS, Analysis, Article, LabelResult, ModelRef, ResultOptions

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
        self.options = DEFAULT_OPTIONS  # the options of the last call

    def analyze(
        self, articles: Sequence[Article], options: ResultOptions = DEFAULT_OPTIONS
    ) -> list[Analysis]:
        self.options = options
        if self.crash_after is not None and self.done + len(articles) > self.crash_after:
            raise RuntimeError("simulated crash")
        if any("REFUSE" in article.text for article in articles):
            raise InvalidInputError("refused")
        self.batches.append(list(articles))
        self.done += len(articles)
        return [fake_analysis(article.text, options.summary_sentences) for article in articles]


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

    report = run(FakePredictor(), source, output, batch_size=2, options=ResultOptions(summary_sentences=2))

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
    output = tmp_path / "out.jsonl"
    run(FakePredictor(), source, output)
    lines = output.read_text("utf-8").splitlines(keepends=True)
    output.write_text("".join([lines[0], "garbage\n", *lines[2:]]), "utf-8")
    before = output.read_bytes()

    with pytest.raises(ResumeRefusedError, match=re.escape("out.jsonl:2: not a Naba result")):
        run(FakePredictor(), source, output)
    assert output.read_bytes() == before


@pytest.mark.parametrize("n_lines", [1, 3])
def test_run_batch_refuses_an_output_that_is_not_results_untouched(tmp_path: Path, n_lines: int) -> None:
    """--input and --output swapped: the archive must not lose its last line as a 'torn' result."""
    results = tmp_path / "results.jsonl"
    write_jsonl(results, [{"id": "a0", **fake_analysis(TEXTS[0]).to_dict()}])
    archive = tmp_path / "archive.jsonl"
    archive.write_bytes(write_jsonl(archive, articles(n_lines)).read_bytes()[:-1])  # no final newline
    before = archive.read_bytes()

    with pytest.raises(ResumeRefusedError, match="does not look like Naba results"):
        run(FakePredictor(), results, archive)
    assert archive.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.jsonl", "results.jsonl"]


def test_run_batch_records_its_settings_and_refuses_to_resume_with_others(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", articles(4))
    output = tmp_path / "out.jsonl"
    model = {"name": "fake", "version": "1", "weights_sha256": "aa", "config_sha256": "bb"}
    with pytest.raises(RuntimeError, match="simulated crash"):  # killed after writing two
        run(FakePredictor(crash_after=2), source, output, model=model, chunk_size=2, batch_size=2)
    manifest = json.loads(manifest_path(output).read_text("utf-8"))
    assert manifest_path(output).name == "out.run.json"
    assert manifest["settings"] == {
        "model": model,
        "summary_sentences": None,
        "summary_ratio": None,
        "operating_point": "balanced",
    }
    before = output.read_bytes(), manifest_path(output).read_bytes()

    for other in (
        {"model": model, "options": ResultOptions(operating_point="recall")},
        {"model": model, "options": ResultOptions(summary_sentences=2)},
        {"model": model, "options": ResultOptions(summary_ratio=0.5)},
        {"model": {**model, "weights_sha256": "cc"}},
        {"model": {**model, "version": "2"}},
    ):
        with pytest.raises(ResumeRefusedError, match=r"started with other settings.*new --output"):
            run(FakePredictor(), source, output, **other)
        assert (output.read_bytes(), manifest_path(output).read_bytes()) == before

    predictor = FakePredictor()
    report = run(predictor, source, output, model=model, chunk_size=2, batch_size=2)  # the same: resumes
    assert (report.skipped_done, report.written) == (2, 2)
    assert [r["id"] for r in read_jsonl(output)] == ["a0", "a1", "a2", "a3"]


def test_run_batch_resumes_an_output_without_manifest_and_records_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", articles(3))
    output = write_jsonl(tmp_path / "out.jsonl", [{"id": "a0", **fake_analysis(TEXTS[0]).to_dict()}])

    report = run(FakePredictor(), source, output, options=ResultOptions(operating_point="recall"))

    assert (report.skipped_done, report.written) == (1, 2)
    assert "has no out.run.json" in caplog.text
    assert json.loads(manifest_path(output).read_text("utf-8"))["settings"]["operating_point"] == "recall"


def test_run_batch_warns_when_resuming_over_a_changed_input(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", articles(2))
    output = tmp_path / "out.jsonl"
    run(FakePredictor(), source, output)
    write_jsonl(source, [{"text": TEXTS[5]}, *articles(3)])

    run(FakePredictor(), source, output)

    assert "input has changed" in caplog.text and "line-<n>" in caplog.text


@pytest.mark.parametrize("field", ["text", "title", "id"])
def test_run_batch_sends_lone_surrogates_to_errors_and_goes_on(tmp_path: Path, field: str) -> None:
    """A `\\ud83d` escape in one article crashed every run at the same chunk (tokenizer, or writing the id)."""
    bad = {"id": "b", "title": "عنوان", "text": TEXTS[0]}
    bad[field] += "X"
    rows = [articles(1)[0], json.dumps(bad, ensure_ascii=False).replace("X", "\\ud83d"), articles(3)[2]]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    output = tmp_path / "out.jsonl"

    for _ in range(2):  # and a rerun goes on the same way
        report = run(FakePredictor(), source, output)
        assert [r["id"] for r in read_jsonl(output)] == ["a0", "a2"]
        [error] = read_jsonl(tmp_path / "out.errors.jsonl")
        assert (error["line"], error["error_type"]) == (2, "data_error")
        assert f"'{field}' holds a lone UTF-16 surrogate" in error["error"]
        assert error["id"] == ("b\\ud83d" if field == "id" else "b")  # escaped: the file stays UTF-8
        assert not report.complete


def test_run_batch_errors_carry_the_id_that_was_read(tmp_path: Path) -> None:
    rows = [*articles(2), {"id": "a0", "text": TEXTS[3]}, {"id": "t", "text": TEXTS[0], "title": ["x"]}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    run(FakePredictor(), source, tmp_path / "out.jsonl")
    errors = read_jsonl(tmp_path / "out.errors.jsonl")
    assert [(e["line"], e["id"]) for e in errors] == [(3, "a0"), (4, "t")]


def test_run_batch_ignores_training_fields(tmp_path: Path) -> None:
    """Labels, evidence and summary are for training: predict must not refuse an article over them."""
    rows = [
        {"id": "l1", "text": TEXTS[0], "labels": "attack"},
        {"id": "l2", "text": TEXTS[0], "labels": ["attack"], "evidence": {"attack": "ليس في النص"}},
        {"id": "l3", "text": TEXTS[0], "labels": ["attack", "attack"]},
        {"id": "l4", "text": TEXTS[0], "summary": ["x"]},
        {"id": "l5", "text": TEXTS[0], "title": 2024},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    predictor = FakePredictor()
    report = run(predictor, source, tmp_path / "out.jsonl")
    assert report.complete and report.written == 5
    assert [a.title for batch in predictor.batches for a in batch] == [None] * 4 + ["2024"]


def test_run_batch_limits_the_title_as_the_service_does(tmp_path: Path) -> None:
    rows = [{"id": "t", "title": "عنوان " * 50, "text": TEXTS[0]}, articles(2)[1]]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    report = run(FakePredictor(), source, tmp_path / "out.jsonl", max_chars=200)
    [error] = read_jsonl(tmp_path / "out.errors.jsonl")
    assert (error["id"], error["error_type"]) == ("t", "input_too_long")
    assert error["error"] == "title has 300 characters; the limit is 200"
    assert report.written == 1


def test_run_batch_reads_on_after_a_bad_csv_row(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(f"id,text\na,{TEXTS[0]}\nb,{TEXTS[1]}\rمزيد\nc,{TEXTS[2]}\n", encoding="utf-8")
    report = run(FakePredictor(), source, tmp_path / "out.jsonl")
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["a", "c"]
    assert [e["line"] for e in read_jsonl(tmp_path / "out.errors.jsonl")] == [3]
    assert not report.complete


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
    (tmp_path / "adir").mkdir()
    out = tmp_path / "out.jsonl"
    with pytest.raises(ValueError, match="positive"):
        run(FakePredictor(), source, out, batch_size=0)
    with pytest.raises(BatchUsageError, match="positive"):
        run(FakePredictor(), source, out, chunk_size=0)
    with pytest.raises(ValueError, match="different"):
        run(FakePredictor(), source, source)
    with pytest.raises(BatchUsageError, match="different"):
        run(FakePredictor(), source, out, errors_path=tmp_path / "out.run.json")
    with pytest.raises(ValueError, match="plain JSONL"):
        run(FakePredictor(), source, tmp_path / "out.jsonl.gz")
    with pytest.raises(BatchUsageError, match="adir is a directory"):
        run(FakePredictor(), source, tmp_path / "adir")
    with pytest.raises(BatchUsageError, match="adir is a directory"):
        run(FakePredictor(), source, out, errors_path=tmp_path / "adir")
    with pytest.raises(BatchUsageError, match=r"directory .*nowhere does not exist"):
        run(FakePredictor(), source, tmp_path / "nowhere" / "out.jsonl")
    with pytest.raises(DataError, match="no such file"):
        run(FakePredictor(), tmp_path / "missing.jsonl", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "in.jsonl"]  # nothing created on refusal


def test_run_batch_passes_summary_ratio_and_operating_point(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", articles(2))
    predictor = FakePredictor()
    run(
        predictor,
        source,
        tmp_path / "out.jsonl",
        options=ResultOptions(summary_ratio=0.5, operating_point="recall"),
    )
    assert predictor.options == ResultOptions(summary_ratio=0.5, operating_point="recall")
