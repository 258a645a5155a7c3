"""Plain data types that go into and come out of the predictor.

They are deliberately free of torch and HTTP: the service turns them into pydantic responses, the batch
script into JSON lines, the evaluation into metrics.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from naba.models.errors import InvalidInputError

# Which per-label thresholds decide the tags: "balanced" maximises F1 on dev (the artifact's `thresholds`),
# "precision" maximises F0.5 (fewer, surer tags) and "recall" maximises F2 (more tags, fewer misses).
OperatingPoint = Literal["balanced", "precision", "recall"]
OPERATING_POINTS: tuple[OperatingPoint, ...] = get_args(OperatingPoint)


def check_operating_point(operating_point: str) -> None:
    """Raises InvalidInputError for an operating point that is not one of `OPERATING_POINTS`."""
    if operating_point not in OPERATING_POINTS:
        raise InvalidInputError(
            f"unknown operating_point {operating_point!r}; choose one of {', '.join(OPERATING_POINTS)}"
        )


@dataclass(frozen=True)
class ResultOptions:
    """What a caller asks of a result: summary length and operating point. Made once per request (the
    service), run (`naba predict`) or evaluation, and passed as it is down to `Predictor.result`.

    Checked when made, so a caller that queues work (the service engine) refuses a bad request before it
    shares a batch with others.

    Raises:
        InvalidInputError: both summary options, a ratio outside (0, 1], or an unknown operating point.
    """

    summary_sentences: int | None = None  # a fixed length (default: the model's setting)
    summary_ratio: float | None = None  # instead, a share r of the article's sentences, 0 < r <= 1
    max_summary_sentences: int | None = None  # an upper bound on any summary (the service's setting)
    operating_point: OperatingPoint = "balanced"  # which thresholds decide the tags and evidence

    def __post_init__(self) -> None:
        if self.summary_sentences is not None and self.summary_ratio is not None:
            raise InvalidInputError("give summary_sentences or summary_ratio, not both")
        if self.summary_ratio is not None and not 0 < self.summary_ratio <= 1:
            raise InvalidInputError(f"summary_ratio must be in (0, 1], got {self.summary_ratio}")
        check_operating_point(self.operating_point)

    def summary_length(self, n_sentences: int, default: int) -> int:
        """How many sentences the summary of an article of `n_sentences` may hold: the one rule every caller
        goes through. `default` is the length when neither option is given (the model's)."""
        if self.summary_ratio is not None:
            # Rounded first so that float noise (0.3 * 10 = 3.0000000000000004) does not add a sentence.
            n = max(1, math.ceil(round(self.summary_ratio * n_sentences, 9)))
        else:
            n = self.summary_sentences or default
        return min(n, self.max_summary_sentences) if self.max_summary_sentences else n


DEFAULT_OPTIONS = ResultOptions()


@dataclass(frozen=True)
class Article:
    """One article to analyse. `title` helps tagging but is never quoted as evidence or summary."""

    text: str
    title: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class LabelResult:
    """A label the article was tagged with, its probability and the sentences that support it."""

    label: str
    score: float
    evidence: list[str]


@dataclass(frozen=True)
class ModelRef:
    """Which model produced a result."""

    name: str
    version: str


@dataclass(frozen=True)
class Analysis:
    """Everything Naba says about one article.

    `labels` holds the labels whose score passes that label's threshold, best first; `scores` holds every
    label's probability; `summary` is made of article sentences (never invented text) in article order, and
    `summary_indices` are their positions among the article's sentences.
    """

    labels: list[LabelResult]
    scores: dict[str, float]
    summary: str
    summary_indices: list[int]
    model: ModelRef
    sentences: list[str] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by the API and `naba predict` (without the sentence list)."""
        data = asdict(self)
        data.pop("sentences")
        return data
