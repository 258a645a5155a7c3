"""Batch prediction over an article archive: the body of `naba predict`.

Articles are read in one streaming pass (JSONL, JSONL.GZ or CSV through `training.data.iter_rows`), analysed
in length-sorted batches and appended to the output as one JSON line each. The output doubles as the
checkpoint: every chunk is flushed and fsynced, and a rerun skips the ids already there, so a run over
millions of articles that is killed resumes where it stopped and loses at most the chunk in progress.

Lines that cannot be analysed go to a separate errors file and the run goes on. That file is rewritten on
every run rather than resumed: each run re-reads every input line, so it finds every error again, and a
rewritten file can never hold a stale or doubled entry (it is complete once a run finishes).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from tqdm import tqdm

from models.errors import DataError, InputTooLongError, InvalidInputError, NabaError
from models.predictor import check_options
from models.preprocessing import validate_text
from models.results import Analysis, Article, OperatingPoint
from training.data import iter_rows

logger = logging.getLogger(__name__)

# Errors that belong to one article: the predictor raising one of these must not sink its batch-mates.
_ARTICLE_ERRORS = (InvalidInputError, InputTooLongError)


class Analyzer(Protocol):
    """What a batch run needs of a predictor: `models.predictor.Predictor` fits, and so do test fakes."""

    def analyze(
        self,
        articles: Sequence[Article],
        summary_sentences: int | None = None,
        *,
        summary_ratio: float | None = None,
        operating_point: OperatingPoint = "balanced",
    ) -> list[Analysis]: ...


@dataclass(frozen=True)
class Options:
    """What every `analyze` call of a run is asked for."""

    summary_sentences: int | None = None
    summary_ratio: float | None = None
    operating_point: OperatingPoint = "balanced"


@dataclass
class BatchReport:
    """What a run did, in non-blank input lines: `written + skipped_done + errors == total_lines`."""

    output_path: Path
    errors_path: Path
    total_lines: int = 0
    written: int = 0
    skipped_done: int = 0
    errors: int = 0


def default_errors_path(output_path: Path) -> Path:
    """`results.jsonl` -> `results.errors.jsonl`, next to the output."""
    return output_path.with_name(f"{output_path.stem}.errors.jsonl")


def run_batch(
    predictor: Analyzer,
    input_path: Path,
    output_path: Path,
    *,
    errors_path: Path | None = None,
    batch_size: int = 16,
    chunk_size: int = 1024,
    summary_sentences: int | None = None,
    summary_ratio: float | None = None,
    operating_point: OperatingPoint = "balanced",
    max_chars: int = 100_000,
    progress: bool = True,
) -> BatchReport:
    """Analyse every article in `input_path` and append one JSON line per article to `output_path`.

    Rows are gathered into chunks of `chunk_size`; each chunk is sorted by text length so that batches of
    `batch_size` hold similar lengths (less padding), then written back in input order and fsynced.

    Args:
        predictor: Anything with `Predictor.analyze`'s signature.
        input_path: `.jsonl`, `.jsonl.gz` or `.csv`; rows without an id get `line-<n>`.
        output_path: Plain JSONL, `{"id": ..., **Analysis.to_dict()}` per line; an existing file is resumed.
        errors_path: Where rejected lines go; defaults to `default_errors_path(output_path)`.
        batch_size: Articles per `analyze` call.
        chunk_size: Rows read, analysed and synced together; a killed run loses at most one chunk.
        summary_sentences: Passed to `analyze`; None keeps the model's default.
        summary_ratio: Passed to `analyze`: summaries of `max(1, ceil(r * sentences))` sentences instead.
        operating_point: Passed to `analyze`: which thresholds decide the tags.
        max_chars: Longest text accepted, as in the service.
        progress: Show a tqdm bar over input lines.

    Returns:
        The counts of the run.

    Raises:
        ValueError: Non-positive sizes, or paths that would overwrite each other.
        InvalidInputError: Options `analyze` cannot honour (both summary options, a bad ratio or point).
        DataError: The input is missing or of an unknown type, or the existing output is corrupt before its
            last line, so resuming from it is unsafe.
    """
    if batch_size < 1 or chunk_size < 1:
        raise ValueError(f"batch_size and chunk_size must be positive, got {batch_size} and {chunk_size}")
    check_options(summary_sentences, summary_ratio, operating_point)  # before any file is touched
    options = Options(summary_sentences, summary_ratio, operating_point)
    errors_path = errors_path or default_errors_path(output_path)
    if output_path.name.endswith(".gz"):
        raise ValueError(f"{output_path}: write plain JSONL, so that a killed run can be resumed")
    if len({p.resolve() for p in (input_path, output_path, errors_path)}) < 3:
        raise ValueError("input, output and errors paths must be three different files")

    rows = iter_rows(input_path, default_id_prefix="line-")  # checks the input before any file is touched
    done = _load_done_ids(output_path)
    if done:
        logger.info("resuming %s: %d articles already there are skipped", output_path, len(done))
    report = BatchReport(output_path=output_path, errors_path=errors_path)
    chunk: list[tuple[int, Article]] = []
    errors: list[dict[str, Any]] = []
    with (
        output_path.open("a", encoding="utf-8") as out,
        errors_path.open("w", encoding="utf-8") as err_out,
        tqdm(desc=f"predict {input_path.name}", unit=" lines", disable=not progress) as bar,
    ):
        for line, row in rows:
            report.total_lines += 1
            bar.update()
            if isinstance(row, DataError):
                errors.append(_error_entry(line, None, row))
            elif row.id in done:
                report.skipped_done += 1
            else:
                try:
                    validate_text(row.text, max_chars)
                except NabaError as exc:
                    errors.append(_error_entry(line, row.id, exc))
                else:
                    chunk.append((line, Article(text=row.text, title=row.title, id=row.id)))
            if len(chunk) + len(errors) >= chunk_size:
                _finish_chunk(predictor, chunk, errors, out, err_out, report, batch_size, options)
                chunk, errors = [], []
        _finish_chunk(predictor, chunk, errors, out, err_out, report, batch_size, options)

    counts = (report.written, report.skipped_done, report.errors)
    logger.info("%s: %d written, %d already done, %d errors", output_path, *counts)
    return report


def _finish_chunk(
    predictor: Analyzer,
    chunk: list[tuple[int, Article]],
    errors: list[dict[str, Any]],
    out: IO[str],
    err_out: IO[str],
    report: BatchReport,
    batch_size: int,
    options: Options,
) -> None:
    """Analyse `chunk` in length-sorted batches, then write results and errors in input order and sync."""
    by_length = sorted(chunk, key=lambda item: len(item[1].text))
    results: dict[int, Analysis | NabaError] = {}
    for start in range(0, len(by_length), batch_size):
        batch = by_length[start : start + batch_size]
        answers = _analyze_batch(predictor, [article for _, article in batch], options)
        results.update((line, answer) for (line, _), answer in zip(batch, answers, strict=True))

    for line, article in chunk:
        answer = results[line]
        if isinstance(answer, NabaError):
            errors.append(_error_entry(line, article.id, answer))
        else:
            out.write(json.dumps({"id": article.id, **answer.to_dict()}, ensure_ascii=False) + "\n")
            report.written += 1
    for entry in sorted(errors, key=lambda entry: entry["line"]):
        err_out.write(json.dumps(entry, ensure_ascii=False) + "\n")
    report.errors += len(errors)
    for stream in (out, err_out):
        stream.flush()
        os.fsync(stream.fileno())


def _analyze_batch(
    predictor: Analyzer, articles: list[Article], options: Options
) -> list[Analysis | NabaError]:
    """Analyse one batch; if the predictor refuses an article, retry one by one so only that one fails."""
    try:
        analyses = predictor.analyze(
            articles,
            options.summary_sentences,
            summary_ratio=options.summary_ratio,
            operating_point=options.operating_point,
        )
    except _ARTICLE_ERRORS as exc:
        if len(articles) == 1:
            return [exc]
        retried = [_analyze_batch(predictor, [article], options) for article in articles]
        return [answer for answers in retried for answer in answers]
    if len(analyses) != len(articles):
        raise RuntimeError(f"predictor returned {len(analyses)} results for {len(articles)} articles")
    return list(analyses)


def _error_entry(line: int, article_id: str | None, error: NabaError) -> dict[str, Any]:
    return {"line": line, "id": article_id, "error": error.message, "error_type": error.error_type}


def _load_done_ids(path: Path) -> set[str]:
    """The ids already in `path`, after cutting away a torn last line left by a killed run.

    Only the last line can be torn (the file is only ever appended to), so it is cut and its article redone;
    a bad line anywhere else means the file was damaged some other way, and resuming from it is refused.
    """
    done: set[str] = set()
    if not path.exists():
        return done
    with path.open("rb+") as f:
        offset = 0
        for number, raw in enumerate(iter(f.readline, b""), start=1):
            article_id = _parse_id(raw) if raw.endswith(b"\n") else None
            if article_id is None:
                if f.readline():
                    raise DataError("not a JSON result with an id; fix or move the file", str(path), number)
                logger.warning(
                    "%s: cutting a torn last line (%d bytes); its article is redone", path, len(raw)
                )
                f.truncate(offset)
                break
            done.add(article_id)
            offset += len(raw)
    return done


def _parse_id(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:  # also UnicodeDecodeError
        return None
    article_id = data.get("id") if isinstance(data, dict) else None
    return article_id if isinstance(article_id, str) else None
