"""Reading and validating labelled articles from JSONL, gzipped JSONL and CSV files.

There are two ways in. `iter_rows` streams one file and yields a `DataError` for each bad row instead of
raising, so a tool can report or skip bad rows in a corpus of millions of lines. `read_records` is strict:
a training run must not start on data with silent holes, so it reads every file, gathers every problem and
raises one error that lists them, so they can all be fixed in one pass. Every message names file and line.

CSV cells map onto the JSON fields: an empty cell is an absent field, and `labels` holds label names separated
by `|`. An empty `labels` cell is therefore unlabelled, as a JSONL row without `labels` is; `[]` says
"labelled, with no topic", as `"labels": []` does in JSONL.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import re
import zlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from naba.models.errors import DataError, InvalidInputError
from naba.models.preprocessing import check_unicode
from naba.models.results import Article

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 20
SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".csv.gz")
LABEL_SEPARATOR = "|"  # between label names in a CSV `labels` cell
NO_LABELS = "[]"  # a CSV `labels` cell saying "labelled, with no topic"; an empty cell is unlabelled
# Longest CSV row read, in characters: ten times the service's longest text (100k), so long articles are read
# (and refused by length where a limit applies, with a clear message), but a quote that is never closed cannot
# make the reader hold the rest of a large file in memory.
MAX_CSV_ROW_CHARS = 1_000_000
ARTICLE_FIELDS = ("id", "title", "text")  # all that prediction reads of a row
_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\udc80-\udcff]")  # what undecodable bytes become under "surrogateescape"


@dataclass(frozen=True)
class Record:
    """One article. `labels` is None when unlabelled and () when labelled with no topic."""

    id: str
    text: str
    title: str | None = None
    labels: tuple[str, ...] | None = None
    summary: str | None = None
    evidence: dict[str, str] | None = None

    @property
    def article(self) -> Article:
        """What the predictor reads of it: text, title and id."""
        return Article(self.text, self.title, self.id)


class RowError(DataError):
    """One bad row: a `DataError` naming file and line, plus the row's id when it could be read (or given by
    `default_id_prefix`), so a report can name the article as well as the line."""

    def __init__(self, message: str, path: str, line: int, record_id: str | None = None) -> None:
        super().__init__(message, path, line)
        self.record_id = record_id


class _Invalid(ValueError):
    """A row-level problem; `iter_rows` turns it into a `RowError` with the file, line and id."""

    def __init__(self, message: str, record_id: str | None = None) -> None:
        super().__init__(message)
        self.record_id = record_id


class _RowTooLong(Exception):
    """Raised by `_CsvLines` inside the CSV reader when a row grows past `MAX_CSV_ROW_CHARS`."""


def iter_rows(
    path: str | Path,
    *,
    known_labels: Collection[str] | None = None,
    default_id_prefix: str | None = None,
    articles_only: bool = False,
) -> Iterator[tuple[int, Record | DataError]]:
    """Stream one data file, yielding `(line, Record)` or `(line, RowError)` for each non-blank row.

    Lines are decoded one at a time, so one bad line never spoils the rest, and memory stays flat apart
    from the dict of ids seen (kept to report a repeated id). For CSV, `line` is where the row starts.

    Args:
        path: a `.jsonl`, `.jsonl.gz`, `.csv` or `.csv.gz` file.
        known_labels: when given, any other label name is an error (catches typos in annotations).
        default_id_prefix: when given, a row without an id gets `f"{prefix}{line}"` instead of an error.
        articles_only: read only id, title and text, as prediction does: labels, summary and evidence are not
            read at all, so a row that only a training tool would refuse for them is still an article.

    Raises:
        DataError: at once, when the file does not exist or its extension is not one of `SUFFIXES`.
    """
    path = check_data_file(path)
    known = frozenset(known_labels) if known_labels is not None else None
    return _iter_file(path, known, default_id_prefix, articles_only)


def check_data_file(path: str | Path) -> Path:
    """`path` as a `Path`, once it names an existing file of a type `iter_rows` reads.

    Raises:
        DataError: the file does not exist, is not a file, or its extension is not one of `SUFFIXES`.
    """
    path = Path(path)
    if not path.name.endswith(SUFFIXES):
        raise DataError(f"unknown file type; expected one of {', '.join(SUFFIXES)}", str(path))
    if not path.is_file():
        raise DataError("no such file" if not path.exists() else "not a file", str(path))
    return path


def _iter_file(
    path: Path, known: frozenset[str] | None, prefix: str | None, articles_only: bool
) -> Iterator[tuple[int, Record | DataError]]:
    where = str(path)
    first_line: dict[str, int] = {}
    line = 0
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as stream:
        is_csv = path.name.endswith((".csv", ".csv.gz"))
        raw_rows = _csv_rows(stream, prefix, articles_only) if is_csv else _jsonl_rows(stream)
        try:
            for line, row in raw_rows:
                try:
                    if isinstance(row, str):
                        raise _Invalid(row)
                    if articles_only:
                        row = {key: row[key] for key in ARTICLE_FIELDS if key in row}
                    record = _build_record(row, line, known, prefix, f"{where}:{line}")
                    if record.id in first_line:
                        message = f"duplicate id {record.id!r} (first on line {first_line[record.id]})"
                        raise _Invalid(message, record.id)
                except _Invalid as exc:
                    yield line, RowError(str(exc), where, line, exc.record_id)
                    continue
                first_line[record.id] = line
                yield line, record
        except (OSError, EOFError, zlib.error) as exc:  # a corrupt or truncated gzip stream
            yield line + 1, RowError(f"cannot read the file past this point: {exc}", where, line + 1)


def _jsonl_rows(stream: Iterable[bytes]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield `(line, object)`, or `(line, message)` for a line that is not a JSON object."""
    for number, raw in enumerate(_without_bom(stream), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, f"invalid UTF-8 at byte {exc.start}: {raw[exc.start : exc.start + 4]!r}"
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, f"invalid JSON: {exc.msg} (column {exc.colno})"
            continue
        if not isinstance(obj, dict):
            yield number, f"expected a JSON object, got {_type_name(obj)}"
            continue
        yield number, obj


class _CsvLines:
    """The file's lines, decoded, as `csv.reader` pulls them; and what the row being read has pulled so far.

    A CSV row always ends at the end of a line, so between two rows the reader has pulled exactly the lines
    of the rows before. Counting here gives a row's first and last line even when the reader fails on it,
    whether it stopped inside a quoted field (an odd number of quotes so far: quotes inside a field are
    doubled), and a bound on its length, enforced before the reader buffers more.
    """

    def __init__(self, stream: Iterable[bytes]) -> None:
        self._lines = _without_bom(stream)
        self.line = 0  # lines pulled so far
        self.exhausted = False
        self.start_row()

    def start_row(self) -> None:
        self.first = self.line + 1
        self._quotes = 0
        self._chars = 0

    @property
    def in_quotes(self) -> bool:
        """Whether the row's lines so far leave a quoted field open."""
        return self._quotes % 2 == 1

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        try:
            raw = next(self._lines)
        except StopIteration:
            self.exhausted = True
            raise
        self.line += 1
        # "surrogateescape" keeps a bad byte from aborting the reader; `_csv_rows` reports the row holding it.
        text = raw.decode("utf-8", "surrogateescape")
        self._quotes += text.count('"')
        self._chars += len(text)
        if self._chars > MAX_CSV_ROW_CHARS:
            raise _RowTooLong
        return text

    def skip_quoted(self) -> None:
        """Pull, unread, the rest of a quoted field the reader gave up on: up to the line that closes it."""
        while self.in_quotes:
            try:
                raw = next(self._lines)
            except StopIteration:
                self.exhausted = True
                return
            self.line += 1
            self._quotes += raw.count(b'"')

    def lines(self) -> str:
        return f"line {self.first}" if self.line <= self.first else f"lines {self.first}-{self.line}"


def _csv_rows(
    stream: Iterable[bytes], prefix: str | None, articles_only: bool
) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield `(line, row)` with CSV cells turned into the JSON shapes, or `(line, message)`.

    A row the CSV reader cannot parse is reported and reading goes on with the next row. `strict` parsing
    makes a quote followed by anything but a separator, and a quote still open at the end of the file, errors
    instead of text silently glued to a field: an unclosed quote otherwise swallows the rows after it.
    """
    # The module's limit (128k by default) is process-wide: raise it to ours, never lower it.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_ROW_CHARS))
    lines = _CsvLines(stream)
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    while True:
        lines.start_row()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except (csv.Error, _RowTooLong) as exc:
            yield lines.first, _csv_problem(exc, lines)
            if header is None:
                return  # no header, no columns: nothing after it can be read
            continue
        if not cells:
            continue
        if any(_SURROGATE.search(cell) for cell in cells):
            yield lines.first, "invalid UTF-8"
            if header is None:
                return
            continue
        if header is None:
            header = [name.strip() for name in cells]
            problem = _header_problem(header, prefix)
            if problem:
                yield lines.first, problem
                return
            continue
        if len(cells) != len(header):
            yield lines.first, f"row has {len(cells)} fields; the header has {len(header)}"
            continue
        row = dict(zip(header, cells, strict=True))
        if articles_only:
            row = {key: row[key] for key in ARTICLE_FIELDS if key in row}
        yield lines.first, _csv_to_json(row)


def _csv_problem(exc: Exception, lines: _CsvLines) -> str:
    """What is wrong with the row the reader failed on, after skipping what is left of it."""
    if isinstance(exc, _RowTooLong):
        lines.skip_quoted()  # the rest of an over-long quoted field must not be read as rows
    if lines.exhausted and lines.in_quotes:
        return (
            f"a quoted field opened on this row is never closed: {lines.lines()}, to the end of the file, "
            "were read into it"
        )
    if isinstance(exc, _RowTooLong):
        return f"row is longer than {MAX_CSV_ROW_CHARS} characters ({lines.lines()}); it was skipped"
    message = str(exc).split(" - do you need")[0]  # csv's hint is about open(), not about the data
    return f"cannot parse this CSV row ({message}; {lines.lines()})"


def _without_bom(stream: Iterable[bytes]) -> Iterator[bytes]:
    """The stream's lines, with a UTF-8 byte-order mark (as Excel writes) dropped from the first."""
    for number, raw in enumerate(stream):
        yield raw.removeprefix(_BOM) if number == 0 else raw


def _header_problem(header: list[str], prefix: str | None) -> str | None:
    if len(set(header)) != len(header):
        return "CSV header repeats a column name"
    if "text" not in header:
        return "CSV header has no 'text' column"
    if "id" not in header and prefix is None:
        return "CSV header has no 'id' column"
    return None


def _csv_to_json(row: dict[str, str]) -> dict[str, Any] | str:
    """Map CSV cells to the JSON form (empty cells absent, labels a list), or return what is wrong."""
    out: dict[str, Any] = {key: value for key, value in row.items() if value.strip() or key == "text"}
    if "labels" in out:
        cell = out["labels"].strip()
        out["labels"] = [] if cell == NO_LABELS else [name.strip() for name in cell.split(LABEL_SEPARATOR)]
    if "evidence" in out:
        try:
            out["evidence"] = json.loads(out["evidence"])
        except json.JSONDecodeError as exc:
            return f"'evidence' cell is not valid JSON: {exc.msg}"
    return out


def _build_record(
    row: dict[str, Any], line: int, known: frozenset[str] | None, prefix: str | None, where: str
) -> Record:
    """Check one row's fields and build its `Record`; raise `_Invalid` naming the first problem (and the id,
    once it is known). `where` (file:line) names the row in warnings."""
    record_id = _integer_as_text(row.get("id"))
    if record_id is not None and not isinstance(record_id, str):
        raise _Invalid(f"'id' must be a string, got {_type_name(record_id)}")
    if record_id is None or not record_id.strip():
        if prefix is None:
            raise _Invalid("'id' is missing or empty")
        record_id = f"{prefix}{line}"
    try:
        _check_unicode(record_id, "id")
        text = row.get("text")
        if text is None:
            raise _Invalid("'text' is missing")
        if not isinstance(text, str):
            raise _Invalid(f"'text' must be a string, got {_type_name(text)}")
        if not text.strip():
            raise _Invalid("'text' is empty or only whitespace")
        _check_unicode(text, "text")
        title = _optional_str("title", _integer_as_text(row.get("title")))
        labels = _labels(row.get("labels"), known)
        return Record(
            id=record_id,
            text=text,
            title=title,
            labels=labels,
            summary=_optional_str("summary", row.get("summary")),
            evidence=_evidence(row.get("evidence"), labels, text, where),
        )
    except _Invalid as exc:
        raise _Invalid(str(exc), record_id) from None


def _integer_as_text(value: Any) -> Any:
    """A JSON integer as its decimal text (spreadsheet exports write numeric ids and titles bare)."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _check_unicode(value: str, field: str) -> None:
    """`check_unicode` as a row problem: a lone surrogate would crash the tokenizer or any UTF-8 writer."""
    try:
        check_unicode(value, repr(field))
    except InvalidInputError as exc:
        raise _Invalid(exc.message) from None


def _optional_str(key: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _Invalid(f"{key!r} must be a string, got {_type_name(value)}")
    if value is not None:
        _check_unicode(value, key)
    return value if value and value.strip() else None


def _labels(value: Any, known: frozenset[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise _Invalid(f"'labels' must be a list of strings, got {_describe(value)}")
    if any(not name.strip() for name in value):
        raise _Invalid("'labels' holds an empty label name")
    padded = [name for name in value if name != name.strip()]
    if padded:  # 'attack ' would silently become a label of its own
        raise _Invalid(f"'labels' holds a label name with surrounding spaces: {padded[0]!r}")
    for name in value:
        _check_unicode(name, "labels")
    if len(set(value)) != len(value):
        raise _Invalid(f"'labels' lists a label twice: {value}")
    if known is not None:
        unknown = sorted(set(value) - known)
        if unknown:
            raise _Invalid(f"unknown label(s) {unknown}; known labels: {sorted(known)}")
    return tuple(value)


def _evidence(value: Any, labels: tuple[str, ...] | None, text: str, where: str) -> dict[str, str] | None:
    """Evidence quotes the text verbatim for one of the row's labels: the predictor points at it.

    A quote that is not in the text (annotators sometimes quote the title, or paraphrase) is dropped with a
    warning naming the file and line: the row's labels are still right, and refusing the whole file for it
    would lose every other article. A quote for a label the row lacks is an error: the labels are in doubt.
    """
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(q, str) for q in value.values()):
        raise _Invalid(f"'evidence' must be an object of label to quote, got {_describe(value)}")
    kept = {}
    for label, quote in value.items():
        if labels is None or label not in labels:
            raise _Invalid(f"'evidence' has a quote for {label!r}, which is not among the row's labels")
        if quote.strip() and quote in text:
            kept[label] = quote
        else:
            logger.warning(
                "%s: 'evidence' for %r is not a verbatim quote of the text: quote dropped", where, label
            )
    return kept


def _type_name(value: Any) -> str:
    """The JSON name of `value`'s type, as an annotator would read it."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "an array holding " + ", ".join(sorted({_type_name(item) for item in value}))
    return _type_name(value)


def read_records(paths: Sequence[str | Path], *, known_labels: Collection[str] | None = None) -> list[Record]:
    """Read and validate every file, all or nothing.

    An id repeated within one file is an error. The same article may appear in two files (labelled in one,
    summarised in another): when the texts are equal its fields are merged into one record, and any field
    the two copies both set differently is an error.

    Args:
        paths: data files, read in order.
        known_labels: when given, any other label name is an error.

    Returns:
        Every record, in order of first appearance.

    Raises:
        DataError: listing the first `MAX_LISTED_ERRORS` problems as "file:line: message" and how many
            there are in all.
    """
    if isinstance(paths, (str, Path)):  # a lone path is a Sequence of characters, not of paths
        paths = [paths]
    records: dict[str, Record] = {}
    errors: list[DataError] = []
    n_errors = 0
    first_seen: dict[str, str] = {}
    for path in paths:
        try:
            rows = iter_rows(path, known_labels=known_labels)
        except DataError as exc:
            rows = iter([(0, exc)])
        for line, item in rows:
            if isinstance(item, Record) and item.id in records:
                merged = _merge(records[item.id], item)
                if merged is None:
                    message = f"id {item.id!r} differs from its first appearance at {first_seen[item.id]}"
                    item = DataError(message, str(path), line)
                else:
                    records[item.id] = merged
                    continue
            if isinstance(item, DataError):
                n_errors += 1
                if len(errors) < MAX_LISTED_ERRORS:
                    errors.append(item)
                continue
            first_seen[item.id] = f"{path}:{line}"
            records[item.id] = item
    if n_errors:
        listed = "\n".join(f"  {error.message}" for error in errors)
        more = f"\n  ... and {n_errors - len(errors)} more" if n_errors > len(errors) else ""
        raise DataError(f"{n_errors} problem(s) in the data:\n{listed}{more}")
    logger.info("read %d records from %d file(s)", len(records), len(paths))
    return list(records.values())


def _merge(first: Record, second: Record) -> Record | None:
    """One record from two copies of the same article, or None when they disagree."""
    if first.text != second.text:
        return None
    fields: dict[str, Any] = {}
    for name in ("title", "labels", "summary", "evidence"):
        a, b = getattr(first, name), getattr(second, name)
        if name == "evidence":  # no quotes is no information, not a disagreement
            a, b = a or None, b or None
        same = sorted(a) == sorted(b) if name == "labels" and a is not None and b is not None else a == b
        if a is not None and b is not None and not same:
            return None
        fields[name] = a if a is not None else b
    return Record(id=first.id, text=first.text, **fields)


def label_set(records: Iterable[Record]) -> list[str]:
    """The sorted union of every record's labels: the label order a model is built with."""
    return sorted({label for record in records for label in record.labels or ()})


def data_hash(paths: Sequence[str | Path]) -> str:
    """A sha256 hex digest of the files' contents in order, to record which data a model was trained on.

    File names are left out, so moving or renaming the data keeps the hash. Each file's size goes in before
    its bytes, so the same bytes split differently between files give a different hash.

    Raises:
        DataError: when a file cannot be read.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    digest = hashlib.sha256()
    for path in paths:
        try:
            with Path(path).open("rb") as stream:
                digest.update(f"{Path(path).stat().st_size}\n".encode())
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
        except OSError as exc:
            raise DataError(f"cannot read: {exc.strerror}", str(path)) from exc
    return digest.hexdigest()


def to_dataset(records: Iterable[Record]) -> datasets.Dataset:
    """A `datasets.Dataset` with columns id, title, text, labels, has_labels, summary, evidence_labels and
    evidence_quotes (the evidence mapping as two parallel lists).

    Missing values become "" and [] so every column keeps one Arrow type; `has_labels` tells an
    unlabelled record from one labelled with no topic.
    """
    import datasets  # imported here: it is slow to import and only training needs it

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "title": datasets.Value("string"),
            "text": datasets.Value("string"),
            "labels": datasets.List(datasets.Value("string")),
            "has_labels": datasets.Value("bool"),
            "summary": datasets.Value("string"),
            "evidence_labels": datasets.List(datasets.Value("string")),
            "evidence_quotes": datasets.List(datasets.Value("string")),
        }
    )
    rows = [
        {
            "id": r.id,
            "title": r.title or "",
            "text": r.text,
            "labels": list(r.labels or ()),
            "has_labels": r.labels is not None,
            "summary": r.summary or "",
            "evidence_labels": list((r.evidence or {}).keys()),
            "evidence_quotes": list((r.evidence or {}).values()),
        }
        for r in records
    ]
    if not rows:  # from_list cannot take features without rows
        return datasets.Dataset.from_dict({name: [] for name in features}, features=features)
    return datasets.Dataset.from_list(rows, features=features)
