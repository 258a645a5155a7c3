"""Batch prediction over an article archive: the body of `naba predict`.

Articles are read in one streaming pass (JSONL, JSONL.GZ or CSV through `naba.models.records.iter_rows`), analysed
in length-sorted batches and appended to the output as one JSON line each. The output doubles as the
checkpoint: every chunk is flushed and fsynced, and a rerun skips the ids already there, so a run over
millions of articles that is killed resumes where it stopped and loses at most the chunk in progress.

A rerun only adds to an output made the same way. The settings that shape a result (model identity, operating
point, summary length) go to a manifest next to the output (`<stem>.run.json`) before anything is written, and
a rerun with other settings is refused instead of mixing two kinds of result in one file. An existing output
that does not look like Naba results (the arguments swapped, say) is refused untouched.

Lines that cannot be analysed go to a separate errors file and the run goes on. That file is rewritten on
every run rather than resumed: each run re-reads every input line, so it finds every error again, and a
rewritten file can never hold a stale or doubled entry (it is complete once a run finishes).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from tqdm import tqdm

from naba.models.errors import DataError, InputTooLongError, InvalidInputError, NabaError
from naba.models.preprocessing import validate_text, validate_title
from naba.models.records import check_data_file, iter_rows
from naba.models.results import DEFAULT_OPTIONS, Analysis, Article, ResultOptions

logger = logging.getLogger(__name__)

# Errors that belong to one article: the predictor raising one of these must not sink its batch-mates.
_ARTICLE_ERRORS = (InvalidInputError, InputTooLongError)
# Keys every result line has; an existing output whose lines lack them is not Naba results.
RESULT_KEYS = frozenset({"id", "labels", "scores", "model"})
MANIFEST_FORMAT = 1
DEFAULT_ID_PREFIX = "line-"  # rows without an id are named by their line: `line-<n>`


class BatchUsageError(NabaError, ValueError):
    """The run's arguments cannot work (clashing paths, a missing directory, a non-positive size); nothing was
    touched. Also a `ValueError`, what callers that do not know Naba's errors catch for bad arguments."""

    error_type = "invalid_argument"


class ResumeRefusedError(DataError):
    """The existing output cannot be added to: other settings, not Naba results, or damaged before its last
    line. Nothing was touched; the remedy is a new `--output` (or moving the old one away)."""

    error_type = "resume_refused"


class Analyzer(Protocol):
    """What a batch run needs of a predictor: `naba.models.predictor.Predictor` fits, and so do test fakes."""

    def analyze(
        self, articles: Sequence[Article], options: ResultOptions = DEFAULT_OPTIONS
    ) -> list[Analysis]: ...


@dataclass
class BatchReport:
    """What a run did, in non-blank input lines: `written + skipped_done + errors == total_lines`."""

    output_path: Path
    errors_path: Path
    total_lines: int = 0
    written: int = 0
    skipped_done: int = 0
    errors: int = 0

    @property
    def complete(self) -> bool:
        """Whether every input line has its result: none went to the errors file (a file that cannot be read
        to its end counts there too)."""
        return self.errors == 0


def default_errors_path(output_path: Path) -> Path:
    """`results.jsonl` -> `results.errors.jsonl`, next to the output."""
    return output_path.with_name(f"{output_path.stem}.errors.jsonl")


def manifest_path(output_path: Path) -> Path:
    """`results.jsonl` -> `results.run.json`: the settings the output was made with."""
    return output_path.with_name(f"{output_path.stem}.run.json")


def model_identity(model_dir: str | Path) -> dict[str, str] | None:
    """Name, version and the sha256 of the weights and of `naba_config.json` (thresholds, calibration) of an
    artifact, read from its `checksums.json` (which loading verifies), so identifying a model costs no hashing.

    Returns None when the artifact cannot be read: loading it will say why.
    """
    from naba.models.artifacts import NABA_CONFIG, WEIGHTS, read_checksums

    path = Path(model_dir)
    try:
        config = json.loads((path / NABA_CONFIG).read_text("utf-8"))
        sums = read_checksums(path)
        return {
            "name": str(config["name"]),
            "version": str(config["version"]),
            "weights_sha256": str(sums[WEIGHTS]),
            "config_sha256": str(sums[NABA_CONFIG]),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_settings(model: Mapping[str, Any] | None, options: ResultOptions) -> dict[str, Any]:
    """What decides a run's results, as the manifest records it: a resume must match every entry."""
    return {
        "model": dict(model) if model is not None else None,
        "summary_sentences": options.summary_sentences,
        "summary_ratio": options.summary_ratio,
        "operating_point": options.operating_point,
    }


def check_run(
    input_path: Path,
    output_path: Path,
    errors_path: Path | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """Refuse, before anything is loaded or touched, a run that cannot go well; return the errors path.

    Checks that the paths are usable and distinct, that the input exists, that an existing output looks like
    Naba results (its manifest, or else its first line) and, given `settings`, that it was made with them.

    Raises:
        BatchUsageError: paths that clash, a missing directory, a directory where a file is named, `.gz`.
        DataError: the input is missing or of an unknown type.
        ResumeRefusedError: the existing output is not Naba results or was made with other settings.
    """
    return _check_run(input_path, output_path, errors_path, settings)[0]


def _check_run(
    input_path: Path, output_path: Path, errors_path: Path | None, settings: Mapping[str, Any] | None
) -> tuple[Path, dict[str, Any] | None]:
    """`check_run`, also returning the existing output's manifest (None when there is no output or none), so
    that `run_batch` reads it once."""
    errors_path = errors_path or default_errors_path(output_path)
    manifest = manifest_path(output_path)
    if output_path.name.endswith(".gz"):
        raise BatchUsageError(f"{output_path}: write plain JSONL, so that a killed run can be resumed")
    if len({p.resolve() for p in (input_path, output_path, errors_path, manifest)}) < 4:
        raise BatchUsageError(
            f"input, output, errors and manifest ({manifest.name}) paths must be four different files"
        )
    for path in (output_path, errors_path):
        if path.is_dir():
            raise BatchUsageError(f"{path} is a directory; name a file to write")
        if not path.parent.is_dir():
            raise BatchUsageError(f"{path}: directory {path.parent} does not exist")
    check_data_file(input_path)
    recorded = None
    if _has_content(output_path):
        recorded = _read_manifest(manifest)
        if recorded is None:
            _check_looks_like_results(output_path)
        elif settings is not None:
            _check_same_settings(output_path, manifest, recorded, settings)
    return errors_path, recorded


def run_batch(
    predictor: Analyzer,
    input_path: Path,
    output_path: Path,
    *,
    errors_path: Path | None = None,
    batch_size: int = 16,
    chunk_size: int = 1024,
    options: ResultOptions = DEFAULT_OPTIONS,
    max_chars: int = 100_000,
    model: Mapping[str, Any] | None = None,
    engine: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> BatchReport:
    """Analyse every article in `input_path` and append one JSON line per article to `output_path`.

    Rows are gathered into chunks of `chunk_size`; each chunk is sorted by text length so that batches of
    `batch_size` hold similar lengths (less padding), then written back in input order and fsynced. Only a
    row's id, title and text are read: training fields (labels, summary, evidence) are ignored.

    Args:
        predictor: Anything with `Predictor.analyze`'s signature.
        input_path: `.jsonl`, `.jsonl.gz` or `.csv`; rows without an id get `line-<n>`, their line number, so
            resuming over an input whose lines moved skips or redoes those rows.
        output_path: Plain JSONL, `{"id": ..., **Analysis.to_dict()}` per line; an existing file is resumed.
        errors_path: Where rejected lines go; defaults to `default_errors_path(output_path)`.
        batch_size: Articles per `analyze` call.
        chunk_size: Rows read, analysed and synced together; a killed run loses at most one chunk.
        options: Passed to every `analyze` call: summary length and operating point.
        max_chars: Longest text, and longest title, accepted, as in the service.
        model: The model's identity (`model_identity`): recorded in the manifest, and a resume must match it.
        engine: How the model runs (backend, device, dtype): recorded; a resume on another one only warns,
            as it moves scores in their last digits, not what a result means.
        progress: Show a tqdm bar over input lines.

    Returns:
        The counts of the run; `complete` is False when any line went to the errors file.

    Raises:
        BatchUsageError: Non-positive sizes, or paths that cannot be used (see `check_run`).
        DataError: The input is missing or of an unknown type.
        ResumeRefusedError: The existing output is not Naba results, was made with other settings, or is
            damaged before its last line, so resuming from it is unsafe.
    """
    if batch_size < 1 or chunk_size < 1:
        raise BatchUsageError(
            f"batch_size and chunk_size must be positive, got {batch_size} and {chunk_size}"
        )
    settings = run_settings(model, options)
    errors_path, previous = _check_run(input_path, output_path, errors_path, settings)
    rows = iter_rows(input_path, default_id_prefix=DEFAULT_ID_PREFIX, articles_only=True)
    manifest = manifest_path(output_path)
    done = _load_done_ids(output_path)
    if done:
        logger.info("resuming %s: %d articles already there are skipped", output_path, len(done))
        _warn_about_changes(output_path, previous, input_path, engine)
    _write_manifest(manifest, settings, input_path, engine)
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
                errors.append(_error_entry(line, getattr(row, "record_id", None), row))
            elif row.id in done:
                report.skipped_done += 1
            else:
                try:
                    validate_text(row.text, max_chars)  # what the service checks, too
                    validate_title(row.title, max_chars)
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
    options: ResultOptions,
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
    predictor: Analyzer, articles: list[Article], options: ResultOptions
) -> list[Analysis | NabaError]:
    """Analyse one batch; if the predictor refuses an article, retry one by one so only that one fails."""
    try:
        analyses = predictor.analyze(articles, options)
    except _ARTICLE_ERRORS as exc:
        if len(articles) == 1:
            return [exc]
        retried = [_analyze_batch(predictor, [article], options) for article in articles]
        return [answer for answers in retried for answer in answers]
    if len(analyses) != len(articles):
        raise RuntimeError(f"predictor returned {len(analyses)} results for {len(articles)} articles")
    return list(analyses)


def _error_entry(line: int, article_id: str | None, error: NabaError) -> dict[str, Any]:
    """One errors-file line. Text that cannot be written as UTF-8 (a lone surrogate in a rejected id, a file
    name with undecodable bytes) is written with `\\uXXXX` escapes, so the errors file can always be written."""
    return {
        "line": line,
        "id": _writable(article_id) if article_id is not None else None,
        "error": _writable(error.message),
        "error_type": error.error_type,
    }


def _writable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at `path`, or None when there is none (an output written before manifests existed).

    Raises:
        ResumeRefusedError: it exists but cannot be read as a manifest.
    """
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        message = f"cannot read this run manifest ({exc}); move it away to resume"
        raise ResumeRefusedError(message, str(path)) from exc
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        raise ResumeRefusedError("not a Naba run manifest (no 'settings'); move it away to resume", str(path))
    return data


def _check_looks_like_results(output_path: Path) -> None:
    """An output with no manifest is resumed (it predates manifests) only if its first line is a result."""
    with output_path.open("rb") as f:
        first = f.readline()
    if not first.endswith(b"\n") or _parse_result_id(first) is None:
        raise ResumeRefusedError(
            f"an existing file that does not look like Naba results (its first line is not a result with "
            f"{', '.join(sorted(RESULT_KEYS))}) and has no {manifest_path(output_path).name}; it was not "
            "touched: check --input and --output, or name a new --output",
            str(output_path),
        )


def _check_same_settings(
    output_path: Path, manifest: Path, recorded: Mapping[str, Any], settings: Mapping[str, Any]
) -> None:
    then = recorded["settings"]
    changed = [
        f"{key}: {then.get(key)!r} then, {settings.get(key)!r} now"
        for key in sorted(set(then) | set(settings))
        if then.get(key) != settings.get(key)
    ]
    if changed:
        raise ResumeRefusedError(
            f"was started with other settings ({'; '.join(changed)}, per {manifest.name}); resuming would mix "
            "two kinds of result in one file: name a new --output, or move this output and its manifest "
            "away to start over",
            str(output_path),
        )


def _warn_about_changes(
    output_path: Path, previous: Mapping[str, Any] | None, input_path: Path, engine: Mapping[str, Any] | None
) -> None:
    if previous is None:
        logger.warning(
            "%s has no %s (written before Naba recorded one): its model and options cannot be checked; "
            "resuming, and recording this run's settings from now on",
            output_path,
            manifest_path(output_path).name,
        )
        return
    if previous.get("input") != _input_identity(input_path):
        logger.warning(
            "%s was started from another input file, or the input has changed since: rows without an id "
            "are named by their line number (line-<n>), so such rows may now be skipped or redone; give "
            "articles ids, or name a new --output",
            output_path,
        )
    if engine is not None and previous.get("engine") not in (None, dict(engine)):
        logger.warning(
            "%s was started on %s and resumes on %s: scores may differ in their last digits",
            output_path,
            previous.get("engine"),
            dict(engine),
        )


def _input_identity(input_path: Path) -> dict[str, Any]:
    stat = input_path.stat()
    return {"path": str(input_path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _write_manifest(
    path: Path, settings: Mapping[str, Any], input_path: Path, engine: Mapping[str, Any] | None
) -> None:
    """Write the manifest atomically (a temporary file renamed into place): never half a manifest."""
    from naba import __version__

    manifest = {
        "format": MANIFEST_FORMAT,
        "settings": dict(settings),
        "engine": dict(engine) if engine is not None else None,
        "input": _input_identity(input_path),
        "naba": __version__,
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(_writable(json.dumps(manifest, ensure_ascii=False, indent=2)) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_done_ids(path: Path) -> set[str]:
    """The ids already in `path`, after cutting away a torn last line left by a killed run.

    Only the last line can be torn (the file is only ever appended to, a line at a time), and a torn line has
    no newline: it is cut and its article redone. A complete line that is not a result means the file was
    damaged some other way, or is not Naba results at all, and resuming from it is refused.
    """
    done: set[str] = set()
    if not path.exists():
        return done
    with path.open("rb+") as f:
        offset = 0
        for number, raw in enumerate(iter(f.readline, b""), start=1):
            if not raw.endswith(b"\n"):  # only the last line can lack one
                logger.warning(
                    "%s: cutting a torn last line (%d bytes); its article is redone", path, len(raw)
                )
                f.truncate(offset)
                break
            article_id = _parse_result_id(raw)
            if article_id is None:
                raise ResumeRefusedError(
                    "not a Naba result with an id; nothing was changed: fix or move the file",
                    str(path),
                    number,
                )
            done.add(article_id)
            offset += len(raw)
    return done


def _parse_result_id(raw: bytes) -> str | None:
    """The id of a result line, or None when the line is not a result."""
    try:
        data = json.loads(raw)
    except ValueError:  # also UnicodeDecodeError
        return None
    if not isinstance(data, dict) or not data.keys() >= RESULT_KEYS:
        return None
    article_id = data["id"]
    return article_id if isinstance(article_id, str) else None
