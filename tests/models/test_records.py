"""Tests for models.records: reading, validating and hashing labelled data."""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from naba.models.errors import DataError
from naba.models.records import (
    MAX_CSV_ROW_CHARS,
    MAX_LISTED_ERRORS,
    Record,
    RowError,
    data_hash,
    iter_rows,
    label_set,
    read_records,
    to_dataset,
)

TEXT = "قصفت القوات المشتركة مواقع للتنظيم."
QUOTE = "القوات المشتركة"
LABELS = ("attack", "coordination_centre", "joint_operation")


def _row(**fields: Any) -> str:
    return json.dumps({"id": "a1", "text": TEXT, **fields}, ensure_ascii=False)


def _write(path: Path, *lines: str | bytes) -> Path:
    data = b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _rows(path: Path, **kwargs: Any) -> list[tuple[int, Record | DataError]]:
    return list(iter_rows(path, **kwargs))


def test_reads_jsonl_fields_and_ignores_extra_keys(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "a.jsonl",
        _row(title="عنوان", labels=["attack"], evidence={"attack": QUOTE}, summary="ملخص", outlet="bbc"),
        "",
        json.dumps({"id": 7, "text": TEXT}),
        _row(id="a3", labels=[], title=None),
    )
    rows = _rows(path)
    assert [line for line, _ in rows] == [1, 3, 4]
    assert rows[0][1] == Record("a1", TEXT, "عنوان", ("attack",), "ملخص", {"attack": QUOTE})
    assert rows[1][1] == Record("7", TEXT)  # int ids become strings; no labels key means unlabelled
    assert rows[2][1] == Record("a3", TEXT, labels=())  # labelled, with no topic


def test_iter_rows_is_lazy(tmp_path: Path) -> None:
    rows = iter_rows(_write(tmp_path / "a.jsonl", _row()))
    assert isinstance(rows, Iterator)
    assert next(rows)[1] == Record("a1", TEXT)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "a2", "text": ', "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got array"),
        ('"just a string"', "expected a JSON object, got string"),
        (json.dumps({"id": "a2"}), "'text' is missing"),
        (_row(id="a2", text=""), "'text' is empty or only whitespace"),
        (_row(id="a2", text=" \n\t\u00a0"), "'text' is empty or only whitespace"),
        (_row(id="a2", text=5), "'text' must be a string, got number"),
        (_row(id="a2", text=["x"]), "'text' must be a string, got array"),
        (_row(id="a2", title=[3]), "'title' must be a string, got array"),
        (_row(id="a2", title=1.5), "'title' must be a string, got number"),
        (_row(id="a2", summary={"x": 1}), "'summary' must be a string, got object"),
        (_row(id="a2", labels="attack"), "'labels' must be a list of strings, got string"),
        (_row(id="a2", labels=["attack", 1]), "'labels' must be a list of strings, got an array holding"),
        (_row(id="a2", labels=["attack", " "]), "empty label name"),
        (_row(id="a2", labels=["attack "]), "label name with surrounding spaces: 'attack '"),
        (_row(id="a2", labels=["attack", "attack"]), "lists a label twice"),
        (_row(id="a2", labels=["attack"], evidence=["x"]), "'evidence' must be an object"),
        (_row(id="a2", labels=["attack"], evidence={"attack": 1}), "'evidence' must be an object"),
        (_row(id="a2", labels=[], evidence={"attack": QUOTE}), "not among the row's labels"),
        (_row(id="a2", evidence={"attack": QUOTE}), "not among the row's labels"),
        (json.dumps({"text": TEXT}), "'id' is missing or empty"),
        (_row(id=" "), "'id' is missing or empty"),
        (_row(id=1.5), "'id' must be a string, got number"),
        (_row(id=True), "'id' must be a string, got boolean"),
        (_row(id="a2", labels=["atack"]), re.escape("unknown label(s) ['atack']")),
        (_row(), re.escape("duplicate id 'a1' (first on line 1)")),
    ],
)
def test_bad_row_is_reported_with_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path / "bad.jsonl", _row(), line, _row(id="a3"))
    rows = _rows(path, known_labels=LABELS)
    assert [n for n, _ in rows] == [1, 2, 3]
    assert isinstance(rows[0][1], Record) and isinstance(rows[2][1], Record)  # the bad line spoils nothing
    error = rows[1][1]
    assert isinstance(error, DataError)
    assert (error.path, error.line) == (str(path), 2)
    assert re.search(f"^{re.escape(str(path))}:2: .*{message}", str(error))
    with pytest.raises(DataError, match=f"{re.escape(str(path))}:2: .*{message}"):
        read_records([path], known_labels=LABELS)


def test_a_quote_not_in_the_text_is_dropped_and_the_labels_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    evidence = {"attack": "ليس في النص", "joint_operation": QUOTE}
    path = _write(tmp_path / "a.jsonl", _row(labels=["attack", "joint_operation"], evidence=evidence))
    with caplog.at_level("WARNING", logger="naba.models.records"):
        (record,) = read_records([path], known_labels=LABELS)
    assert record.labels == ("attack", "joint_operation")
    assert record.evidence == {"joint_operation": QUOTE}
    assert f"{path}:1: 'evidence' for 'attack' is not a verbatim quote" in caplog.text


def test_bad_utf8_spoils_only_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", b'{"id": "a1", "text": "\xff\xfe bad"}', _row(id="a2"))
    (line, error), (_, record) = _rows(path)
    assert line == 1 and isinstance(error, DataError)
    assert re.search(r"a\.jsonl:1: invalid UTF-8 at byte 22", str(error))
    assert record == Record("a2", TEXT)


def test_labels_are_free_without_known_labels(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", _row(labels=["anything"]))
    assert read_records([path]) == [Record("a1", TEXT, labels=("anything",))]


def test_default_id_prefix_fills_missing_ids(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", json.dumps({"text": TEXT}), "", _row(id=""), _row(id="x"))
    ids = [item.id for _, item in _rows(path, default_id_prefix="corpus-") if isinstance(item, Record)]
    assert ids == ["corpus-1", "corpus-3", "x"]


def test_utf8_bom_is_ignored(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", b"\xef\xbb\xbf" + _row().encode())
    assert read_records([path]) == [Record("a1", TEXT)]


def test_reads_gzipped_jsonl(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl.gz", _row(labels=["attack"]), _row(id="a2"))
    assert [r.id for r in read_records([path])] == ["a1", "a2"]


def test_truncated_gzip_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(_row(id=f"a{i}") for i in range(200)).encode())[:-30])
    line, error = _rows(path)[-1]
    assert isinstance(error, DataError) and "cannot read the file past this point" in str(error)
    with pytest.raises(DataError, match=rf"a\.jsonl\.gz:{line}: cannot read"):
        read_records([path])


def test_reads_csv_with_pipe_separated_labels(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    evidence = json.dumps({"attack": QUOTE}, ensure_ascii=False).replace('"', '""')
    path.write_text(
        "id,title,text,labels,evidence\n"
        f'c1,عنوان,"{TEXT}\nسطر ثان",attack|joint_operation,"{evidence}"\n'
        f"c2,,{TEXT},[],\n"
        f"c3,,{TEXT}, attack ,\n"
        f"c4,,{TEXT},,\n",
        encoding="utf-8",
    )
    rows = _rows(path, known_labels=LABELS)
    assert [line for line, _ in rows] == [2, 4, 5, 6]  # c1's text spans two lines
    assert rows[0][1] == Record(
        "c1", f"{TEXT}\nسطر ثان", "عنوان", ("attack", "joint_operation"), None, {"attack": QUOTE}
    )
    assert rows[1][1] == Record("c2", TEXT, labels=())  # `[]`: labelled, with no topic
    assert rows[2][1] == Record("c3", TEXT, labels=("attack",))
    assert rows[3][1] == Record("c4", TEXT)  # an empty cell: unlabelled, as a JSONL row without `labels`


def test_csv_empty_labels_cell_is_unlabelled_like_jsonl(tmp_path: Path) -> None:
    """A summary-only row in a mixed CSV must not count as a labelled negative in `naba evaluate`."""
    csv_path = tmp_path / "mixed.csv"
    csv_path.write_text(f"id,text,labels,summary\nc1,{TEXT},attack,\nc2,{TEXT},,ملخص\n", encoding="utf-8")
    jsonl_path = _write(
        tmp_path / "mixed.jsonl", _row(id="c1", labels=["attack"]), _row(id="c2", summary="ملخص")
    )
    assert read_records([csv_path]) == read_records([jsonl_path])
    assert read_records([csv_path])[1].labels is None


def test_csv_without_labels_column_is_unlabelled(tmp_path: Path) -> None:
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(f"id,text,summary\nc1,{TEXT},ملخص\n".encode()))
    assert read_records([path]) == [Record("c1", TEXT, summary="ملخص")]


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (f"id,body\nc1,{TEXT}\n".encode(), 1, "no 'text' column"),
        (f"text\n{TEXT}\n".encode(), 1, "no 'id' column"),
        (f"id,text,text\nc1,{TEXT},x\n".encode(), 1, "repeats a column"),
        (f"id,text\nc1,{TEXT},extra\n".encode(), 2, "row has 3 fields; the header has 2"),
        (f"id,text\nc1,{TEXT}\n".encode() + b"c2,\xff\xfe\n", 3, "invalid UTF-8"),
        (f"id,text,labels\nc1,{TEXT},attack||x\n".encode(), 2, "empty label name"),
        (
            f"id,text,labels,evidence\nc1,{TEXT},attack,{{oops\n".encode(),
            2,
            "'evidence' cell is not valid JSON",
        ),
        (f"id,text\nc1,{TEXT}\nc1,{TEXT}\n".encode(), 3, "duplicate id 'c1'"),
        (b"id,text\nc1,   \n", 2, "'text' is empty"),
        (f"id,text\n,{TEXT}\n".encode(), 2, "'id' is missing"),
    ],
)
def test_bad_csv_is_reported_with_file_and_line(
    tmp_path: Path, content: bytes, line: int, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"bad\.csv:{line}: .*{re.escape(message)}"):
        read_records([path])


def _csv_rows(path: Path, content: bytes) -> list[tuple[int, str]]:
    """Each row of `content` as (line, id of the record or start of the error message)."""
    path.write_bytes(content)
    return [
        (line, item.id if isinstance(item, Record) else item.message.split(": ", 1)[1])
        for line, item in iter_rows(path)
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            f"c2,{TEXT}\rبقية\n",
            "cannot parse this CSV row (new-line character seen in unquoted field; line 3)",
        ),
        (f'c2,"{TEXT}"x\n', "cannot parse this CSV row (',' expected after '\"'; line 3)"),
        ("c2," + "خ" * (MAX_CSV_ROW_CHARS + 1) + "\n", f"row is longer than {MAX_CSV_ROW_CHARS} characters"),
        (  # a quoted field over the limit, on several lines: its lines must not be read as rows
            'c2,"' + ("خبر\nc9,نص\n" * (MAX_CSV_ROW_CHARS // 8 + 1)) + 'آخر"\n',
            f"row is longer than {MAX_CSV_ROW_CHARS} characters",
        ),
    ],
    ids=["bare-cr", "text-after-quote", "too-long", "too-long-quoted"],
)
def test_csv_parse_error_spoils_only_its_row(tmp_path: Path, bad: str, message: str) -> None:
    content = f"id,text\nc1,{TEXT}\n{bad}c3,{TEXT}\nc4,{TEXT}\n".encode()
    rows = _csv_rows(tmp_path / "a.csv", content)
    assert [row[1] for row in rows] == ["c1", rows[1][1], "c3", "c4"]
    assert rows[1][0] == 3 and rows[1][1].startswith(message)
    with pytest.raises(DataError, match=r"a\.csv:3: "):
        read_records([tmp_path / "a.csv"])


def test_csv_field_over_the_old_128k_limit_is_read(tmp_path: Path) -> None:
    long_text = "خبر " * 40_000  # 160k characters: over csv's default field limit of 131072
    rows = _csv_rows(tmp_path / "a.csv", f'id,text\nc1,"{long_text}"\nc2,{TEXT}\n'.encode())
    assert rows == [(2, "c1"), (3, "c2")]


def test_csv_quote_never_closed_is_an_error(tmp_path: Path) -> None:
    rows = _csv_rows(tmp_path / "a.csv", f'id,text\nc1,{TEXT}\nc2,"{TEXT}\nc3,{TEXT}\nc4,{TEXT}\n'.encode())
    assert rows[0] == (2, "c1")
    assert rows[1] == (
        3,
        "a quoted field opened on this row is never closed: lines 3-5, to the end of the file, were read into it",
    )
    assert len(rows) == 2


def test_csv_quote_closed_rows_later_is_an_error_naming_the_lines_it_took(tmp_path: Path) -> None:
    """An unclosed quote pairs with the next quote in the file; strict parsing catches the text after it."""
    content = f'id,text\nc1,{TEXT}\nc2,"{TEXT}\nc3,{TEXT}\nc4,"{TEXT}"\nc5,{TEXT}\n'.encode()
    rows = _csv_rows(tmp_path / "a.csv", content)
    assert rows == [
        (2, "c1"),
        (3, "cannot parse this CSV row (',' expected after '\"'; lines 3-5)"),
        (6, "c5"),
    ]


@pytest.mark.parametrize("field", ["id", "text", "title", "summary", "labels"])
def test_lone_surrogate_is_a_bad_row_with_its_line(tmp_path: Path, field: str) -> None:
    """JSON can spell a lone UTF-16 surrogate; it is no text, and crashed the tokenizer and UTF-8 writers."""
    value: Any = "X" if field != "text" else TEXT + "X"
    row = _row(**{"id": "a2", field: [value] if field == "labels" else value}).replace("X", "\\ud83d")
    path = _write(tmp_path / "a.jsonl", _row(), row, _row(id="a3"))
    rows = _rows(path)
    assert [type(item).__name__ for _, item in rows] == ["Record", "RowError", "Record"]
    assert re.search(rf"a\.jsonl:2: '{field}' holds a lone UTF-16 surrogate \(U\+D83D\)", str(rows[1][1]))
    with pytest.raises(DataError, match=rf"a\.jsonl:2: '{field}' holds a lone UTF-16 surrogate"):
        read_records([path])


def test_a_surrogate_pair_is_text(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", _row(title="X").replace("X", "\\ud83d\\ude00"))
    assert read_records([path]) == [Record("a1", TEXT, "\U0001f600")]


def test_articles_only_ignores_training_fields(tmp_path: Path) -> None:
    """Prediction reads id, title and text: fields only training checks must not cost an article."""
    path = _write(
        tmp_path / "a.jsonl",
        _row(id="l1", labels="attack"),
        _row(id="l2", labels=["attack"], evidence={"joint_operation": QUOTE}),
        _row(id="l3", labels=["attack", "attack"]),
        _row(id="l4", summary=["x"]),
        _row(id="l5", title=2024),
        _row(id="l6", evidence="X").replace("X", "\\ud800"),
    )
    assert all(isinstance(item, DataError) for _, item in _rows(path)[:4])
    records = [item for _, item in _rows(path, articles_only=True)]
    assert records == [Record(f"l{i}", TEXT) for i in range(1, 5)] + [
        Record("l5", TEXT, "2024"),
        Record("l6", TEXT),
    ]
    csv_path = tmp_path / "a.csv"
    csv_path.write_text(f"id,text,labels,evidence\nc1,{TEXT},attack||,{{oops\n", encoding="utf-8")
    assert [item for _, item in iter_rows(csv_path, articles_only=True)] == [Record("c1", TEXT)]


def test_row_error_carries_the_id_once_read(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "a.jsonl",
        _row(),
        _row(),  # duplicate
        _row(id="a2", text=5),
        _row(id="a3", title=["x"]),
        _row(id=1.5),
        json.dumps({"title": "x"}),
    )
    errors = [item for _, item in _rows(path, default_id_prefix="line-")[1:]]
    assert all(isinstance(error, RowError) for error in errors)
    assert [error.record_id for error in errors] == ["a1", "a2", "a3", None, "line-6"]  # type: ignore[union-attr]


def test_csv_text_column_alone_is_enough_with_an_id_prefix(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(f"text\n{TEXT}\n", encoding="utf-8")
    assert [item for _, item in _rows(path, default_id_prefix="p")] == [Record("p2", TEXT)]


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"a\.json: unknown file type"):
        iter_rows(_write(tmp_path / "a.json", _row()))
    with pytest.raises(DataError, match=r"missing\.jsonl: no such file"):
        iter_rows(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match=r"missing\.jsonl: no such file"):
        read_records([tmp_path / "missing.jsonl"])


def test_same_article_in_two_files_is_merged(tmp_path: Path) -> None:
    labelled = _write(tmp_path / "a.jsonl", _row(labels=["attack"]))
    summarised = _write(tmp_path / "b.jsonl", _row(id="b1"), _row(summary="ملخص"))
    records = read_records([labelled, summarised])
    assert [r.id for r in records] == ["a1", "b1"]
    assert records[0].labels == ("attack",) and records[0].summary == "ملخص"


def test_copies_that_agree_up_to_label_order_or_missing_quotes_are_merged(tmp_path: Path) -> None:
    both = ["attack", "joint_operation"]
    first = _write(tmp_path / "a.jsonl", _row(labels=both, evidence={}))
    second = _write(tmp_path / "b.jsonl", _row(labels=both[::-1], evidence={"attack": TEXT[:10]}))
    (record,) = read_records([first, second])
    assert set(record.labels) == set(both) and record.evidence == {"attack": TEXT[:10]}


@pytest.mark.parametrize("other", [{"text": "نص آخر مختلف"}, {"labels": ["joint_operation"]}])
def test_same_id_with_different_content_across_files_is_an_error(tmp_path: Path, other: dict) -> None:
    first = _write(tmp_path / "a.jsonl", _row(labels=["attack"]))
    second = _write(tmp_path / "b.jsonl", _row(id="b1"), _row(**other))
    pattern = r"b\.jsonl:2: id 'a1' differs from its first appearance at .*a\.jsonl:1"
    with pytest.raises(DataError, match=pattern):
        read_records([first, second])


def test_read_records_lists_at_most_twenty_problems(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", *["not json"] * 25, _row())
    with pytest.raises(DataError) as caught:
        read_records(path)  # a lone path is accepted too
    message = str(caught.value)
    assert message.startswith("25 problem(s)")
    assert message.count("invalid JSON") == MAX_LISTED_ERRORS
    assert "a.jsonl:20: invalid JSON" in message and "a.jsonl:21:" not in message
    assert message.endswith("... and 5 more")


def test_label_set_is_sorted_union() -> None:
    records = [
        Record("1", TEXT, labels=("joint_operation", "attack")),
        Record("2", TEXT),
        Record("3", TEXT, labels=()),
    ]
    assert label_set(records) == ["attack", "joint_operation"]


def test_data_hash_depends_on_bytes_and_order_not_names(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", _row())
    b = _write(tmp_path / "b.jsonl", _row(id="a2"))
    moved = tmp_path / "elsewhere" / "renamed.jsonl"
    moved.parent.mkdir()
    moved.write_bytes(a.read_bytes())
    assert data_hash([a, b]) == data_hash([moved, b])
    assert data_hash([a, b]) != data_hash([b, a])
    assert re.fullmatch("[0-9a-f]{64}", data_hash([a]))
    # The same bytes split differently between files are different data.
    (tmp_path / "x").write_bytes(b"ab")
    (tmp_path / "y").write_bytes(b"c")
    (tmp_path / "z").write_bytes(b"a")
    (tmp_path / "w").write_bytes(b"bc")
    assert data_hash([tmp_path / "x", tmp_path / "y"]) != data_hash([tmp_path / "z", tmp_path / "w"])
    with pytest.raises(DataError, match="cannot read"):
        data_hash([tmp_path / "missing.jsonl"])


def test_to_dataset_columns() -> None:
    records = [
        Record("1", TEXT, "عنوان", ("attack",), "ملخص", evidence={"attack": "اقتباس"}),
        Record("2", TEXT, labels=()),
        Record("3", TEXT),
    ]
    dataset = to_dataset(records)
    assert dataset.column_names == [
        "id", "title", "text", "labels", "has_labels", "summary", "evidence_labels", "evidence_quotes"
    ]  # fmt: skip
    assert dataset["evidence_labels"] == [["attack"], [], []]
    assert dataset["evidence_quotes"] == [["اقتباس"], [], []]
    assert dataset["labels"] == [["attack"], [], []]
    assert dataset["has_labels"] == [True, True, False]
    assert dataset["title"] == ["عنوان", "", ""]
    assert dataset["summary"] == ["ملخص", "", ""]
    assert len(to_dataset([])) == 0


def _data_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    return Path(os.environ.get("NABA_DATA_DIR", default))


@pytest.mark.data
def test_reads_shared_data() -> None:
    data = _data_dir()
    if not (data / "labelled" / "train.jsonl").is_file():
        pytest.skip(f"no shared data at {data} (set NABA_DATA_DIR)")
    train = read_records([data / "labelled" / "train.jsonl"], known_labels=LABELS)
    assert len(train) == 613
    assert label_set(train) == list(LABELS)
    assert all(r.labels is not None for r in train)
    # Every label is quoted, but for one attack quote (line 603) that paraphrases the title: dropped.
    unquoted = [(r.id, set(r.labels or ()) - set(r.evidence or {})) for r in train]
    assert [labels for _, labels in unquoted if labels] == [{"attack"}]
    counts = {label: sum(label in (r.labels or ()) for r in train) for label in LABELS}
    assert counts == {"attack": 200, "coordination_centre": 33, "joint_operation": 215}
    assert sum(not r.labels for r in train) == 255
    summaries = read_records([data / "summaries" / "bbc_dev.jsonl"])
    assert len(summaries) == 333
    assert all(r.labels is None and r.summary for r in summaries)
    assert label_set(summaries) == []
