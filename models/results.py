"""Plain data types that go into and come out of the predictor.

They are deliberately free of torch and HTTP: the service turns them into pydantic responses, the batch
script into JSON lines, the evaluation into metrics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

# Which per-label thresholds decide the tags: "balanced" maximises F1 on dev (the artifact's `thresholds`),
# "precision" maximises F0.5 (fewer, surer tags) and "recall" maximises F2 (more tags, fewer misses).
OperatingPoint = Literal["balanced", "precision", "recall"]
OPERATING_POINTS: tuple[OperatingPoint, ...] = get_args(OperatingPoint)


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
